//! The flat parameter vector θ ∈ R^D and its layout: named blocks (name, shape, offset) in the
//! order the layers use them. Noise, directions and probes all live in this one space.

/// One named block of θ: `θ[offset .. offset + len]`, reshaped to `shape` (row-major).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// `layer.param`, for example `dense0.weight`.
    pub name: String,
    /// Shape of the block, for example `[out, in]`.
    pub shape: Vec<usize>,
    /// First index in θ.
    pub offset: usize,
    /// Number of entries, `∏ shape`.
    pub len: usize,
    /// Fan-in for initialization (inputs feeding one output unit).
    pub fan_in: usize,
    /// Fan-out for initialization.
    pub fan_out: usize,
    /// Whether this is a bias (initialized to 0 under Xavier).
    pub is_bias: bool,
}

/// The blocks of θ in order; D = Σ len.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// Blocks in θ order.
    pub blocks: Vec<Block>,
}

impl Layout {
    /// Appends a block and returns its offset.
    pub fn push(
        &mut self,
        name: String,
        shape: Vec<usize>,
        fan_in: usize,
        fan_out: usize,
        is_bias: bool,
    ) -> usize {
        let offset = self.dim();
        let len = shape.iter().product();
        self.blocks.push(Block {
            name,
            shape,
            offset,
            len,
            fan_in,
            fan_out,
            is_bias,
        });
        offset
    }

    /// Number of parameters D.
    pub fn dim(&self) -> usize {
        self.blocks.last().map_or(0, |b| b.offset + b.len)
    }

    /// The block called `name`.
    pub fn block(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_accumulate() {
        let mut l = Layout::default();
        assert_eq!(l.push("a.weight".into(), vec![3, 2], 2, 3, false), 0);
        assert_eq!(l.push("a.bias".into(), vec![3], 2, 3, true), 6);
        assert_eq!(l.dim(), 9);
        assert_eq!(l.block("a.bias").unwrap().offset, 6);
    }
}

//! TensorBoard event files beside `metrics.jsonl`, so that TensorBoard (and W&B through
//! `wandb sync`) read a run as it goes.
//!
//! No crate writes this format today without pulling in TensorFlow's whole protobuf tree or
//! an unmaintained writer, so the file is written here from its definition:
//! - a file is a sequence of records, each `len: u64 LE`, `masked_crc32c(len bytes): u32 LE`,
//!   `data`, `masked_crc32c(data): u32 LE` (TensorFlow's `TFRecord`);
//! - each record's data is a serialized `tensorflow.Event` protobuf (encoded by `prost` from
//!   the message definitions below, which keep TensorFlow's field numbers);
//! - the first event holds `file_version = "brain.Event:2"`.
//!
//! Every number of a metric line becomes a scalar (`simple_value`, f32) tagged with its JSON
//! path (`train_loss`, `probes/lambda_max`, `probes/hessian_top/0`); text (the provenance
//! record) goes through TensorBoard's text plugin.

use prost::Message;
use serde_json::Value;

/// The file version TensorBoard expects in the first event.
const FILE_VERSION: &str = "brain.Event:2";

/// `tensorflow.Event` (tensorflow/core/util/event.proto), the fields used here.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary` (tensorflow/core/framework/summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
    #[prost(oneof = "Kind", tags = "2, 8")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `tensorflow.SummaryMetadata`: which TensorBoard plugin shows the value.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
}

/// `tensorflow.TensorProto`, as a scalar string.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

/// `tensorflow.TensorShapeProto` with no dimensions: a scalar.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShape {}

/// `tensorflow.DataType.DT_STRING`.
const DT_STRING: i32 = 7;

/// The CRC that TFRecord stores: CRC-32C, rotated and offset so that a CRC of data holding
/// CRCs stays well distributed.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord holding `event`.
fn record(event: &Event) -> Vec<u8> {
    let data = event.encode_to_vec();
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&masked_crc(&data).to_le_bytes());
    out
}

/// The record a file starts with.
pub fn file_header(wall_time: f64) -> Vec<u8> {
    record(&Event {
        wall_time,
        step: 0,
        what: Some(What::FileVersion(FILE_VERSION.into())),
    })
}

/// The leaves of a metric line (numbers, `null`, booleans, strings) under their JSON paths,
/// the keys and array indices joined by `sep` (`probes/hessian_top/0` with `/`).
pub fn leaves(line: &Value, sep: char) -> Vec<(String, &Value)> {
    fn walk<'a>(prefix: &str, sep: char, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        let join = |k: &str| match prefix {
            "" => k.to_string(),
            p => format!("{p}{sep}{k}"),
        };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(&join(k), sep, v, out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(&join(&i.to_string()), sep, v, out)),
            leaf => out.push((prefix.to_string(), leaf)),
        }
    }
    let mut out = Vec::new();
    walk("", sep, line, &mut out);
    out
}

/// The scalars of one metric line, tagged with their JSON paths; `step` is the event's step,
/// not a scalar, and `null` (a value that was not finite) is left out.
pub fn scalars(line: &Value) -> Vec<(String, f32)> {
    leaves(line, '/')
        .into_iter()
        .filter(|(tag, _)| tag != "step")
        .filter_map(|(tag, v)| Some((tag, v.as_f64()? as f32)))
        .collect()
}

/// The record of one metric line: its scalars at its `step`, stamped `start + time_s` (the
/// run's own clock, which continues across the processes of a resumed run), or `start` for
/// a line without `time_s`. `None` for a line without a step or without numbers.
pub fn metric_record(start: f64, line: &Value) -> Option<Vec<u8>> {
    let step = line["step"].as_u64()?;
    let value: Vec<SummaryValue> = scalars(line)
        .into_iter()
        .map(|(tag, x)| SummaryValue {
            tag,
            metadata: None,
            kind: Some(Kind::SimpleValue(x)),
        })
        .collect();
    if value.is_empty() {
        return None;
    }
    Some(record(&Event {
        wall_time: start + line["time_s"].as_f64().unwrap_or(0.0),
        step: step as i64,
        what: Some(What::Summary(Summary { value })),
    }))
}

/// A text record for TensorBoard's text tab (shown as Markdown).
pub fn text_record(wall_time: f64, step: u64, tag: &str, text: &str) -> Vec<u8> {
    record(&Event {
        wall_time,
        step: step as i64,
        what: Some(What::Summary(Summary {
            value: vec![SummaryValue {
                tag: tag.into(),
                metadata: Some(SummaryMetadata {
                    plugin_data: Some(PluginData {
                        plugin_name: "text".into(),
                    }),
                }),
                kind: Some(Kind::Tensor(TensorProto {
                    dtype: DT_STRING,
                    tensor_shape: Some(TensorShape {}),
                    string_val: vec![text.as_bytes().to_vec()],
                })),
            }],
        })),
    })
}

/// The file name TensorBoard looks for: `events.out.tfevents.<unix seconds>.<host>`.
pub fn file_name(unix_s: u64, host: &str) -> String {
    // The host becomes part of a file name: keep it to characters that are safe there.
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("events.out.tfevents.{unix_s}.{host}")
}

/// The unix time a file name made by [`file_name`] holds.
pub fn file_start(name: &str) -> Option<u64> {
    name.strip_prefix("events.out.tfevents.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// One event read back: its step and wall time, the file version, scalars and texts it holds.
#[cfg(test)]
#[derive(Debug, PartialEq)]
#[allow(missing_docs)] // the tests' reader: the fields are the Event's
pub struct ReadEvent {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    pub scalars: Vec<(String, f32)>,
    pub texts: Vec<(String, String)>,
}

/// Reads a file back record by record, checking every length and CRC (the tests' reader;
/// TensorBoard's own reads the files in `scripts/tensorboard_check.py`).
#[cfg(test)]
pub fn read_events(mut bytes: &[u8]) -> Result<Vec<ReadEvent>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let head = bytes.get(..12).ok_or("a torn record header")?;
        let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) as usize;
        if u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) != masked_crc(&head[..8]) {
            return Err(format!("record {}: length CRC", out.len()));
        }
        let body = bytes
            .get(12..16 + len)
            .ok_or_else(|| format!("record {}: torn", out.len()))?;
        let data = &body[..len];
        if u32::from_le_bytes(body[len..].try_into().expect("4 bytes")) != masked_crc(data) {
            return Err(format!("record {}: data CRC", out.len()));
        }
        let e = Event::decode(data).map_err(|e| format!("record {}: {e}", out.len()))?;
        let mut r = ReadEvent {
            wall_time: e.wall_time,
            step: e.step,
            file_version: None,
            scalars: Vec::new(),
            texts: Vec::new(),
        };
        match e.what {
            Some(What::FileVersion(v)) => r.file_version = Some(v),
            Some(What::Summary(s)) => {
                for v in s.value {
                    match v.kind {
                        Some(Kind::SimpleValue(x)) => r.scalars.push((v.tag, x)),
                        Some(Kind::Tensor(t)) => {
                            let text = t.string_val.concat();
                            r.texts
                                .push((v.tag, String::from_utf8_lossy(&text).into_owned()));
                        }
                        None => {}
                    }
                }
            }
            None => {}
        }
        out.push(r);
        bytes = &bytes[16 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The file's events, decoded.
    fn read_records(mut bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            out.push(Event::decode(&bytes[12..12 + len]).unwrap());
            bytes = &bytes[16 + len..];
        }
        out
    }

    #[test]
    fn the_reader_checks_lengths_and_crcs_and_reads_scalars_and_texts_back() {
        let mut file = file_header(7.0);
        file.extend(metric_record(7.0, &json!({"step": 3, "loss": 0.5})).unwrap());
        file.extend(text_record(7.0, 3, "note", "hello"));
        let events = read_events(&file).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!(events[1].scalars, [("loss".to_string(), 0.5)]);
        assert_eq!((events[1].step, events[1].wall_time), (3, 7.0));
        assert_eq!(events[2].texts, [("note".to_string(), "hello".to_string())]);
        let mut bad = file.clone();
        let last = bad.len() - 6;
        bad[last] ^= 1;
        assert!(read_events(&bad).unwrap_err().contains("record 2"));
        assert!(
            read_events(&file[..file.len() - 3])
                .unwrap_err()
                .contains("torn")
        );
    }

    #[test]
    fn the_crc_is_tensorflows_masked_crc32c() {
        // CRC-32C of "123456789" is 0xE3069283 (its standard check value); TensorFlow's mask
        // rotates it right by 15 bits and adds 0xa282ead8.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let expected = 0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc(b"123456789"), expected);
    }

    #[test]
    fn a_metric_line_becomes_one_event_of_tagged_scalars() {
        let line = json!({
            "step": 40, "time_s": 2.5, "train_loss": 0.25, "final": true,
            "probes": {"lambda_max": 3.0, "hessian_top": [3.0, 1.5], "gone": null},
        });
        let mut file = file_header(100.0);
        file.extend(metric_record(100.0, &line).unwrap());
        file.extend(text_record(100.0, 40, "provenance", "made by *noisescope*"));
        let events = read_records(&file);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        assert_eq!((events[1].step, events[1].wall_time), (40, 102.5));
        let Some(What::Summary(s)) = &events[1].what else {
            panic!("not a summary: {:?}", events[1]);
        };
        let got: Vec<(&str, f32)> = s
            .value
            .iter()
            .map(|v| match v.kind {
                Some(Kind::SimpleValue(x)) => (v.tag.as_str(), x),
                _ => panic!("not a scalar: {v:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("probes/hessian_top/0", 3.0),
                ("probes/hessian_top/1", 1.5),
                ("probes/lambda_max", 3.0),
                ("time_s", 2.5),
                ("train_loss", 0.25),
            ]
        );
        let Some(What::Summary(t)) = &events[2].what else {
            panic!("not a summary");
        };
        let Some(Kind::Tensor(tp)) = &t.value[0].kind else {
            panic!("not a tensor");
        };
        assert_eq!(tp.string_val, [b"made by *noisescope*".to_vec()]);
        assert_eq!(
            t.value[0]
                .metadata
                .as_ref()
                .unwrap()
                .plugin_data
                .as_ref()
                .unwrap()
                .plugin_name,
            "text"
        );
    }

    #[test]
    fn lines_without_a_step_or_numbers_make_no_event() {
        assert!(metric_record(0.0, &json!({"train_loss": 1.0})).is_none());
        assert!(metric_record(0.0, &json!({"step": 3, "note": "x"})).is_none());
    }

    #[test]
    fn file_names_carry_their_start_and_a_safe_host() {
        let n = file_name(1_765_000_000, "node 7/a");
        assert_eq!(n, "events.out.tfevents.1765000000.node_7_a");
        assert_eq!(file_start(&n), Some(1_765_000_000));
        assert_eq!(file_start("events.out.tfevents.x"), None);
    }
}

#!/usr/bin/env python3
"""Checks that every relative link of the Markdown pages resolves: inline links `[text](target)`,
images `![alt](target)` and reference definitions `[id]: target` must name a file or folder
that exists, and a `#fragment` on a link to a .md page (or a bare `#fragment`) must name one of
that page's headings. CI runs it, so that the pages' links to figures, configs, results and
other pages stay valid while files move. Exit status 1 when a link is broken.

    scripts/check_links.py [FILE_OR_DIR ...]     (default: README.md, CHANGELOG.md, docs/)
    scripts/check_links.py --self-test

A folder stands for every *.md file under it. A target is taken relative to its page's folder
(a leading `/`: to the repository root), with `?query` and `#fragment` cut off and %-escapes
decoded. Targets with a scheme (http:, https:, mailto:, ...) are not checked, nor are links
inside fenced code blocks (``` or ~~~) or inline code spans. Anchors are GitHub's heading
slugs (lowercase, spaces to '-', punctuation other than '-' and '_' dropped, repeated headings
suffixed -1, -2, ...), plus explicit `<a name="…">`/`id="…"` anchors; a fragment on a link to
anything but a .md page is not checked. Broken links are printed as `path:line: target
(reason)`, the reason starting with "missing file" or "missing anchor".
"""

import os
import re
import sys
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import unquote

DEFAULT = ["README.md", "CHANGELOG.md", "docs"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ANCHOR = re.compile(r"<[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
# Link text: brackets may nest one level (`![Tr[AΣ] against α](…)`); no blank line inside.
TEXT = r"\[(?:[^\[\]\n]|\n(?![ \t]*\n)|\[[^\[\]\n]*\])*\]"
# Destination: <…>, or a run without spaces whose parentheses balance one level; then a title.
DEST = r"(<[^<>\n]*>|(?:[^\s()]|\([^\s()]*\))*)"
TITLE = r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?"
INLINE = re.compile(TEXT + r"\(\s*" + DEST + TITLE + r"\s*\)")
REFDEF = re.compile(r"^ {0,3}\[(?:[^\[\]\\]|\\.)+\]:[ \t]*(<[^<>\n]*>|\S+)", re.M)
SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")


def mask(text):
    """`text` with fenced code blocks, inline code spans and backslash escapes blanked out
    (same length, newlines kept), so that what they hold is no link."""
    lines = text.split("\n")
    fence = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = m.group(1)
                lines[i] = " " * len(line)
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
            lines[i] = " " * len(line)
    out = []
    # Code spans do not cross a blank line: mask paragraph by paragraph.
    for para in re.split(r"(\n[ \t]*\n)", "\n".join(lines)):
        para = re.sub(r"\\.", "  ", para)
        para = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", "x", m.group(0)), para)
        out.append(para)
    return "".join(out)


def strip_inline(text):
    """A heading's text as GitHub renders it: markup left out, code kept verbatim."""
    parts = re.split(r"(`+[^`]*`+)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part.strip("`"))
            continue
        part = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", part)  # links and images → their text
        part = re.sub(r"!?\[([^\]]*)\]\[[^\]]*\]", r"\1", part)
        part = re.sub(r"<[^>]+>", "", part)  # inline HTML
        part = re.sub(r"\\(.)", r"\1", part)
        part = part.replace("*", "").replace("~~", "")
        part = re.sub(r"(?<![^\W_])_+|_+(?![^\W_])", "", part)  # _emphasis_, not snake_case
        out.append(part)
    return "".join(out).strip()


def slug_base(text):
    """GitHub's slug of a heading (github-slugger): lowercase; letters, marks, digits, '_' and
    '-' kept; every space a '-'; everything else dropped."""
    keep = []
    for ch in strip_inline(text).lower():
        if ch == " ":
            keep.append("-")
        elif ch == "-" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc":
            keep.append(ch)
    return "".join(keep)


def anchors(path, cache={}):
    """The anchors of a Markdown page: its heading slugs (duplicates numbered as GitHub does)
    and its explicit HTML anchors."""
    if path in cache:
        return cache[path]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        cache[path] = set()
        return cache[path]
    lines = mask(text).split("\n")
    raw = text.split("\n")
    found, seen = set(), {}

    def add(heading):
        base = slug = slug_base(heading)
        if slug in seen:
            while slug in seen:
                seen[base] += 1
                slug = f"{base}-{seen[base]}"
        seen[slug] = 0
        found.add(slug)

    for i, line in enumerate(lines):
        if not line.strip():  # blank, or inside a fence
            continue
        m = ATX.match(raw[i])
        if m:
            add(m.group(2) or "")
            continue
        # Setext heading: a paragraph line underlined with === or ---.
        if i + 1 < len(lines) and SETEXT.match(lines[i + 1]) and not re.match(r"^ {0,3}(?:[-*+>]\s|\||\d+[.)]\s)", raw[i]):
            add(raw[i].strip())
    for m in HTML_ANCHOR.finditer("\n".join(lines)):
        found.add(m.group(1))
    cache[path] = found
    return found


def links(text):
    """(line, target) of every inline link, image and reference definition outside code."""
    masked = mask(text)
    found = []
    for m in INLINE.finditer(masked):
        start, end = m.span(1)
        found.append((start, text[start:end]))
    for m in REFDEF.finditer(masked):
        start, end = m.span(1)
        found.append((start, text[start:end]))
    return [(masked.count("\n", 0, start) + 1, target) for start, target in sorted(found)]


def check_file(page, root):
    """(checked, broken) for one page: broken as (line, target, reason)."""
    text = page.read_text(encoding="utf-8")
    checked, broken = 0, []
    for line, target in links(text):
        target = target.strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1].strip()
        if SCHEME.match(target):
            continue
        checked += 1
        if not target:
            broken.append((line, target, "missing file: empty target"))
            continue
        path, _, fragment = target.partition("#")
        path = path.partition("?")[0]
        fragment = unquote(fragment)
        if path:
            path = unquote(path)
            base = root if path.startswith("/") else page.parent
            dest = Path(os.path.normpath(base / path.lstrip("/")))
            if not dest.exists():
                broken.append((line, target, f"missing file: {shown(dest)} does not exist"))
                continue
        else:
            dest = page
        if fragment and dest.is_file() and dest.suffix.lower() == ".md" and fragment not in anchors(dest):
            broken.append((line, target, f"missing anchor: no heading #{fragment} in {shown(dest)}"))
    return checked, broken


def shown(path):
    """`path` relative to the working folder where it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def pages(args, root):
    out, missing = [], []
    for arg in args:
        p = Path(arg)
        if not p.is_absolute() and not p.exists():
            p = root / arg
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.md") if q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            missing.append(arg)
    return out, missing


def run(args, root, quiet=False):
    """Checks the pages `args` name; returns (checked, files, broken as (page, line, target,
    reason))."""
    files, missing = pages(args, root)
    for arg in missing:
        print(f"{arg}: no such file or folder", file=sys.stderr)
    if missing:
        sys.exit(2)
    total, broken = 0, []
    for page in files:
        n, bad = check_file(page, root)
        total += n
        broken += [(page, *b) for b in bad]
    if not quiet:
        for page, line, target, reason in broken:
            print(f"{shown(page)}:{line}: {target} ({reason})")
        print(f"{total} links checked in {len(files)} files, {len(broken)} broken")
    return total, len(files), broken


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "docs" / "figures").mkdir(parents=True)
        (root / "results" / "run a").mkdir(parents=True)
        (root / "docs" / "figures" / "plot.svg").write_text("<svg/>")
        (root / "docs" / "other.md").write_text(
            "# Other page\n\n## Setup & *Usage*\n\nx\n\n## Setup & Usage\n\n```sh\n# not a heading\n```\n\n"
            "Σ and `C` relative\n---\n"
        )
        (root / "README.md").write_text(
            "# Title\n"  # 1
            "[good](docs/other.md) and ![plot](docs/figures/plot.svg \"t\")\n"  # 2
            "[gone](docs/missing.md)\n"  # 3
            "[bad anchor](docs/other.md#nowhere)\n"  # 4
            "```\n[in fence](nope.md)\n```\n"  # 5-7
            "`[in code](nope2.md)` [anchors](docs/other.md#setup--usage-1#x)\n"  # 8
            "[ref]: docs/other.md#setup--usage\n"  # 9
            "[badref]: ./absent.png\n"  # 10
            "[web](https://example.com) [self](#title) [bad self](#titel)\n"  # 11
            "[dir](results/run%20a/) [root](/docs/other.md?x=1#σ-and-c-relative) ![Tr[AΣ]](docs/figures/gone.svg)\n"  # 12
            "~~~\n[tilde fence](nope3.md)\n~~~\n"  # 13-15
        )
        total, files, broken = run([str(root / "README.md")], root, quiet=True)
        got = sorted((line, target, reason.split(":")[0]) for _, line, target, reason in broken)
        want = [
            (3, "docs/missing.md", "missing file"),
            (4, "docs/other.md#nowhere", "missing anchor"),
            (8, "docs/other.md#setup--usage-1#x", "missing anchor"),
            (10, "./absent.png", "missing file"),
            (11, "#titel", "missing anchor"),
            (12, "docs/figures/gone.svg", "missing file"),
        ]
        assert got == want, f"broken links: {got}, expected {want}"
        # good, plot, gone, bad anchor, anchors, ref, badref, self, bad self, dir, root, Tr[AΣ]
        assert (total, files) == (12, 1), (total, files)
        other = anchors(root / "docs" / "other.md")
        assert other == {"other-page", "setup--usage", "setup--usage-1", "σ-and-c-relative"}, other
    print("self-test passed")
    return 0


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        return self_test()
    if any(a.startswith("-") for a in args):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    _, _, broken = run(args or [str(root / d) for d in DEFAULT], root)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

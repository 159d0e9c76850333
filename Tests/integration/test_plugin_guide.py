"""The plugin author's guide (README "Writing a plugin") and the DocC articles quote code that builds: every Swift
block is either a verbatim excerpt of an example plugin (compiled by test_counter_bundle.py and test_plugins.py)
or, when it starts with `// PluginAPI signatures`, declarations found in Sources/PluginAPI."""
import re

import pytest

from conftest import ROOT

GUIDES = {
    "README.md": ("## Writing a plugin\n", "\n## Layout\n"),
    "Sources/PluginAPI/PluginAPI.docc/PluginAPI.md": (None, None),
    "Sources/PluginAPI/PluginAPI.docc/WritingAPlugin.md": (None, None),
}
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*/**/*.swift") if ".build" not in p.parts)
SIGNATURES = "// PluginAPI signatures"


def swift_blocks(path, start, end):
    text = (ROOT / path).read_text()
    if start:
        text = text[text.index(start):]
        text = text[:text.index(end)] if end in text else text
    return re.findall(r"```swift\n(.*?)```", text, re.S)


def lines(text):
    return [line.strip() for line in text.splitlines() if line.strip()]


def squash(text):
    """Whitespace collapsed, `public ` dropped: declarations compare across line breaks and access modifiers."""
    text = re.sub(r"\s+", " ", text.replace("public ", "")).strip()
    # Line breaks a formatter puts inside brackets, and its trailing commas, do not change a declaration.
    text = re.sub(r"([(\[]) ", r"\1", text)
    text = re.sub(r",? ([)\]])", r"\1", text)
    return text


def contiguous_in(block, haystack):
    n = len(block)
    return any(haystack[i:i + n] == block for i in range(len(haystack) - n + 1))


BLOCKS = [(path, index, block) for path, (start, end) in GUIDES.items()
          for index, block in enumerate(swift_blocks(path, start, end))]


def test_the_guides_have_swift_blocks():
    counts = {path: sum(1 for p, _, _ in BLOCKS if p == path) for path in GUIDES}
    assert counts["README.md"] >= 8 and counts["Sources/PluginAPI/PluginAPI.docc/WritingAPlugin.md"] >= 3, counts
    assert any(block.startswith(SIGNATURES) for _, _, block in BLOCKS)


@pytest.mark.parametrize("path, index, block", BLOCKS, ids=[f"{p.split('/')[-1]}-{i}" for p, i, _ in BLOCKS])
def test_swift_block_is_example_code_or_a_real_signature(path, index, block):
    if block.startswith(SIGNATURES):
        source = squash("\n".join(p.read_text() for p in sorted((ROOT / "Sources" / "PluginAPI").glob("*.swift"))))
        missing = [line for line in lines(block) if not line.startswith("//") and squash(line) not in source]
        assert missing == [], f"{path} block {index}: not declared in Sources/PluginAPI: {missing}"
        return
    wanted = lines(block)
    files = {str(p.relative_to(ROOT)): lines(p.read_text()) for p in EXAMPLES}
    assert any(contiguous_in(wanted, found) for found in files.values()), \
        f"{path} block {index} is not a verbatim excerpt of {sorted(files)}:\n{block}"

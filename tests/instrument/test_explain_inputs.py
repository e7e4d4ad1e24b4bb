"""explain's input files from elsewhere: a deeply nested or non-UTF-8 .json and a complex .npy are each a
one-line input error (exit 2), never an internal error (exit 3) or a silently dropped imaginary part."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("not-utf8.json", b"\xff\xfe[1]", "not UTF-8"),
        ("complex.npy", np.array([1 + 2j, 0.5]), "complex numbers"),
    ],
    ids=["a JSON nested 100,000 deep", "a JSON that is not UTF-8", "a complex .npy"],
)
def test_a_bad_input_file_is_exit_2_with_one_line(tmp_path, capsys, name, content, says):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["explain", "--y-true", "1,0", "--y-pred", str(path), "--no-tensorflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err

"""Provenance: input hashes, package versions and the code version of a run."""

import json
import subprocess

from resistance_outcomes.provenance import git_state, provenance_record, sha256_file


def test_sha256_matches_the_published_test_vector(tmp_path):
    # FIPS 180-2, appendix B.1: SHA-256("abc")
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")
    assert sha256_file(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_sha256_of_a_file_larger_than_one_chunk(tmp_path):
    # FIPS 180-2, appendix B.3: SHA-256 of one million "a"
    path = tmp_path / "a.txt"
    path.write_bytes(b"a" * 1_000_000)
    assert sha256_file(path, chunk_size=4096) == (
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    )


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)


def test_git_state_reports_commit_and_dirty_tree(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD").stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("two\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_git_state_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_record_is_json_and_names_every_input(tmp_path):
    clients = tmp_path / "clients.csv"
    clients.write_bytes(b"abc")
    config = {"study": "s", "seed": 7, "validation": {"mode": "strict"}}
    record = provenance_record({"clients": clients}, config, code_dir=tmp_path)
    assert record["inputs"]["clients"] == {
        "path": str(clients),
        "bytes": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    assert record["seed"] == 7 and record["config"] == config
    assert record["packages"]["pandas"] is not None
    json.dumps(record)

"""The answer cache: dense blocks stored as scores, JSON for the rest, on disk and in memory."""

import json
import sqlite3

import numpy as np
import pytest
from _oip import LABELS, SHAPE, OipServer, model_for

from bar_sdk.adapters.remote import AnswerCache
from bar_sdk.adapters.remote.flight import KeyedAnswers
from bar_sdk.adapters.remote.presets.base import DenseAnswers

X = np.random.default_rng(0).random((6, *SHAPE)).astype(np.float32)

# Values JSON and float64 bytes must both give back bit for bit: tiny, subnormal, 1 - ulp, zero.
ROWS = np.array([[1e-300, 5e-324, 1.0 - 2**-53], [0.0, 0.1 + 0.2, 1.0]])


def block_answers(keys=("k0", "k1"), labels=LABELS, rows=ROWS):
    return KeyedAnswers(list(keys), DenseAnswers(labels, rows))


def stored_types(path):
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, typeof(answer) FROM answers"))


@pytest.fixture(params=["disk", "memory"])
def cache(request, tmp_path):
    c = AnswerCache(tmp_path / "answers.sqlite" if request.param == "disk" else None)
    yield c
    c.close()


def test_a_block_reads_back_as_the_same_dicts_bit_for_bit(cache):
    answers = block_answers()
    cache.put_many(answers)
    got = cache.get_many(["k1", "k0", "absent"])
    assert got == {"k0": answers["k0"], "k1": answers["k1"]}
    for key, row in zip(["k0", "k1"], ROWS, strict=True):
        assert [v.hex() for v in got[key].values()] == [v.hex() for v in row.tolist()]
        assert list(got[key]) == LABELS  # in the labels' order
    assert len(cache) == 2


def test_each_image_of_many_blocks_reads_its_own_row(cache):
    rows = np.random.default_rng(3).random((3, 4, len(LABELS)))
    for b in range(3):
        cache.put_many(block_answers([f"b{b}r{r}" for r in range(4)], rows=rows[b]))
    got = cache.get_many([f"b{b}r{r}" for b in range(3) for r in range(4)])
    assert got == {f"b{b}r{r}": dict(zip(LABELS, rows[b, r].tolist(), strict=True)) for b in range(3) for r in range(4)}


def test_sparse_answers_and_blocks_live_side_by_side_and_the_last_write_wins(cache):
    cache.put_many({"k0": {"cat": 0.5, "dog": None}, "k9": {"fish": 0.25}})
    cache.put_many(block_answers())  # k0 answered again, as a block
    got = cache.get_many(["k0", "k1", "k9"])
    assert got == {"k0": block_answers()["k0"], "k1": block_answers()["k1"], "k9": {"fish": 0.25}}
    cache.put_many({"k1": {"dog": 1.0}})
    assert cache.get_many(["k1"]) == {"k1": {"dog": 1.0}} and len(cache) == 3


def test_what_is_read_or_stored_is_a_copy(cache):
    answer = {"cat": 0.5}
    cache.put_many({"k": answer})
    answer["cat"] = 9.0
    got = cache.get_many(["k"])["k"]
    got["dog"] = 1.0
    assert cache.get_many(["k"]) == {"k": {"cat": 0.5}}


def test_on_disk_a_block_is_stored_as_scores_behind_one_label_set(tmp_path):
    path = tmp_path / "answers.sqlite"
    cache = AnswerCache(path)
    cache.put_many(block_answers())
    cache.put_many(block_answers(keys=("k2", "k3")))
    cache.put_many(block_answers(keys=("k4",), labels=["a", "b"], rows=[[0.5, 0.5]]))
    cache.put_many({"k5": {"cat": 1.0}})
    cache.close()
    assert stored_types(path) == dict.fromkeys(["k0", "k1", "k2", "k3", "k4"], "blob") | {"k5": "text"}
    with sqlite3.connect(path) as db:
        sets = [json.loads(t) for (t,) in db.execute("SELECT labels FROM label_sets ORDER BY id")]
    assert sets == [LABELS, ["a", "b"]]
    again = AnswerCache(path)  # a new process: the label sets are read from the file
    assert again.get_many(["k3", "k4", "k5"]) == {
        "k3": block_answers()["k1"],
        "k4": {"a": 0.5, "b": 0.5},
        "k5": {"cat": 1.0},
    }


def test_a_block_with_repeated_labels_reads_back_as_its_dicts(cache):
    answers = block_answers(labels=["cat", "cat", "dog"])
    cache.put_many(answers)
    got = cache.get_many(["k0"])
    assert got == {"k0": answers["k0"]} == {"k0": {"cat": ROWS[0, 1], "dog": ROWS[0, 2]}}
    assert list(got["k0"]) == ["cat", "dog"]  # the order a dict of those pairs has, as JSON kept it


def test_a_cache_written_before_blocks_existed_still_reads_and_takes_them(tmp_path):
    path = tmp_path / "answers.sqlite"
    with sqlite3.connect(path) as db:  # the schema and rows of the earlier release
        db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        db.execute("CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO answers VALUES (?, ?)", ("old", json.dumps({"cat": 0.125})))
        db.execute("INSERT INTO state VALUES (?, ?)", ("ledger", json.dumps({"billed": 1})))
    cache = AnswerCache(path)
    cache.put_many(block_answers())
    assert cache.get_many(["old", "k0"]) == {"old": {"cat": 0.125}, "k0": block_answers()["k0"]}
    assert cache.load_state("ledger") == {"billed": 1}


def test_a_damaged_block_is_refused_naming_what_it_holds(tmp_path):
    path = tmp_path / "answers.sqlite"
    AnswerCache(path).put_many(block_answers())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE answers SET answer = substr(answer, 1, 12) WHERE key = 'k0'")
        db.execute("UPDATE answers SET answer = ? WHERE key = 'k1'", (b"\x07\x00\x00\x00" + bytes(24),))
    cache = AnswerCache(path)
    with pytest.raises(ValueError, match=r"holds 12 bytes; expected 28 \(a label-set id and 3 float64 scores\)"):
        cache.get_many(["k0"])
    with pytest.raises(ValueError, match="names label set 7, which is not stored"):
        cache.get_many(["k1"])


@pytest.mark.parametrize("where", ["disk", "memory"])
def test_a_state_that_cannot_be_written_stores_no_answers(tmp_path, where):
    cache = AnswerCache(tmp_path / "answers.sqlite" if where == "disk" else None)

    def broken():
        raise RuntimeError("ledger unreadable")

    with pytest.raises(RuntimeError, match="ledger unreadable"):
        cache.put_many(block_answers(), {"run": {"step": 3}, "ledger": broken})
    assert cache.get_many(["k0", "k1"]) == {} and len(cache) == 0
    assert cache.load_state("run") is None and cache.load_state("ledger") is None  # the first state is undone too


def test_an_open_inference_model_resumes_from_its_disk_cache_with_the_same_scores(tmp_path):
    server = OipServer(binary=True)  # binary tensors both ways, metadata and readiness as a V2 server gives them

    def model():
        return model_for(server, cache_dir=tmp_path, max_queries=len(X))

    def images_sent():
        return sum(len(values) for _, values in server.inputs)

    first = model()
    p = first.predict_proba(X)
    first.close()
    assert images_sent() == len(X) and set(stored_types(tmp_path / "answers.sqlite").values()) == {"blob"}
    again = model()
    np.testing.assert_array_equal(again.predict_proba(X), p)  # bit for bit, from the file
    assert images_sent() == len(X) and again.ledger.cache_hits == len(X) and again.ledger.billed == len(X)

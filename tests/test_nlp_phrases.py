"""The phrase memory behind the models' phrase features (pure Python, no torch)."""

from __future__ import annotations

import pytest

from suggestions.ml.understanding.phrases import PhraseMemory, fold_of, jackknife_tags


def _example(words: str, tags: str) -> tuple[list[str], list[str]]:
    return words.split(), tags.split()


def test_memory_tags_remembered_phrases_leftmost_longest():
    memory = PhraseMemory().fit([
        _example("acme desk lamp", "B-brand B-product_type I-product_type"),
        _example("red lamp", "B-color B-product_type"),
    ])
    assert memory.tags(["Acme", "red", "desk", "lamp"]) == [
        "B-brand", "B-color", "B-product_type", "I-product_type"]
    assert memory.tags(["nothing", "here"]) == ["O", "O"]
    assert PhraseMemory().tags(["acme"]) == ["O"]  # an empty memory knows nothing


def test_json_round_trip_and_bad_input():
    memory = PhraseMemory().fit([_example("华 为 手 机", "B-brand I-brand B-product_type I-product_type")])
    again = PhraseMemory.from_json(memory.to_json())
    assert again.tags(list("买华为手机")) == memory.tags(list("买华为手机"))
    assert len(again) == len(memory) == 2
    for bad in ({}, {"format": 2, "phrases": []}, {"format": 1, "phrases": "x"}, []):
        with pytest.raises(ValueError):
            PhraseMemory.from_json(bad)


def test_jackknife_features_never_come_from_the_example_itself():
    words = [["zorbo", "lamp"], ["acme", "lamp"], ["acme", "chair"], ["acme", "desk"], ["buy", "now"]]
    tags = [["B-brand", "B-product_type"], ["B-brand", "B-product_type"], ["B-brand", "B-product_type"],
            ["B-brand", "B-product_type"], None]
    keys = ["zorbo lamp", "acme lamp", "acme chair", "acme desk", "buy now"]
    features, full = jackknife_tags(words, tags, keys, folds=5)
    # "zorbo" is labelled in one query only: its own features cannot know it...
    assert features[0][0] == "O"
    # ...but the memory saved with the model does.
    assert full.tags(["zorbo"]) == ["B-brand"]
    # "acme" is labelled in three queries: each one's features know it exactly
    # when another of them lies in a different fold (the fold's own rows are
    # held out of the memory that tags it).
    acme = range(1, 4)
    assert len({fold_of(keys[i], 5) for i in acme}) > 1, "the keys must spread over folds"
    for i in acme:
        taught = any(fold_of(keys[j], 5) != fold_of(keys[i], 5) for j in acme if j != i)
        assert features[i][0] == ("B-brand" if taught else "O"), keys[i]
    # An example without entity supervision is tagged by the full memory.
    assert features[4] == ["O", "O"]


def test_repeated_queries_share_a_fold_so_a_twin_does_not_leak():
    words = [["zorbo", "lamp"], ["zorbo", "lamp"], ["other", "thing"]]
    tags = [["B-brand", "B-product_type"]] * 2 + [["O", "O"]]
    features, _ = jackknife_tags(words, tags, ["zorbo lamp", "zorbo lamp", "other thing"], folds=3)
    assert features[0] == features[1] == ["O", "O"]


def test_jackknife_rejects_bad_arguments():
    with pytest.raises(ValueError):
        jackknife_tags([["a"]], [["O"]], ["a"], folds=1)
    with pytest.raises(ValueError):
        jackknife_tags([["a"]], [["O"], ["O"]], ["a"], folds=5)

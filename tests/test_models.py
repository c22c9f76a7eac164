"""Loading the course encoder: packaged default offline, clear error for hub ids offline."""

import pytest

from beyondbert.models import DEFAULT_ENCODER, default_encoder_path, load_encoder


def test_default_path_holds_minilm():
    path = default_encoder_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_load_default_offline():
    tokenizer, model = load_encoder()
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert tokenizer.tokenize("embeddings") == ["em", "##bed", "##ding", "##s"]
    assert not model.training


def test_hub_id_offline_names_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=DEFAULT_ENCODER.replace("/", ".")):
        load_encoder("bert-base-uncased")

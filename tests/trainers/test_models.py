"""Model shapes, pre- vs post-norm structure, LM perplexity, data loaders."""

import math

import pytest
import torch

from hpsearch.trainers import data, lm, mlp, nets, vit
from hpsearch.trainers import text as corpora


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_vit_shapes(norm):
    cfg = vit.Config(layers=2, dim=16, heads=2, patch=2, norm=norm)
    model = nets.ViT((1, 8, 8), 10, cfg)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_vit_pre_and_post_norm_differ_structurally():
    torch.manual_seed(0)
    pre = nets.Block(16, 2, 32, 0.0, "pre", causal=False)
    torch.manual_seed(0)
    post = nets.Block(16, 2, 32, 0.0, "post", causal=False)
    x = torch.randn(3, 7, 16) * 5 + 2
    y_post, y_pre = post(x), pre(x)
    # Post-norm ends with LayerNorm: every token is normalised. Pre-norm keeps the residual.
    assert torch.allclose(y_post.mean(-1), torch.zeros(3, 7), atol=1e-5)
    assert not torch.allclose(y_pre.mean(-1), torch.zeros(3, 7), atol=1e-2)
    post_vit = nets.ViT((1, 8, 8), 10, vit.Config(norm="post", dim=16, heads=2))
    pre_vit = nets.ViT((1, 8, 8), 10, vit.Config(norm="pre", dim=16, heads=2))
    assert isinstance(post_vit.final_norm, torch.nn.Identity)
    assert isinstance(pre_vit.final_norm, torch.nn.LayerNorm)


@pytest.mark.parametrize("model", ["lstm", "gpt"])
def test_lm_shapes_and_untrained_perplexity_near_vocab(model):
    cfg = lm.Config(model=model, layers=1, dim=16, heads=2, context=8, dropout=0.0)
    net = (nets.GPT if model == "gpt" else nets.LSTMLM)(30, cfg)
    x = torch.randint(0, 30, (4, 8))
    assert net(x).shape == (4, 8, 30)
    loss, _ = nets.lm_loss(net, x, torch.randint(0, 30, (4, 8)))
    assert 15 < math.exp(loss.item()) < 60  # an untrained model is near-uniform over 30 tokens


def test_gpt_is_causal():
    cfg = lm.Config(model="gpt", layers=2, dim=16, heads=2, context=8, dropout=0.0)
    net = nets.GPT(20, cfg).eval()
    x = torch.randint(0, 20, (1, 8))
    x2 = x.clone()
    x2[0, -1] = (x[0, -1] + 1) % 20
    assert torch.allclose(net(x)[0, :-1], net(x2)[0, :-1], atol=1e-5)


def test_shakespeare_train_and_val_are_different_plays():
    text = corpora.load_text("shakespeare", 20_000)
    assert len(text.train) == 20_000 and len(text.val) >= 4000
    assert 40 < text.vocab_size < 120
    x, y = corpora.windows(text.train, 32)
    assert torch.equal(x[0, 1:], y[0, :-1])


def test_wikitext2_loader_from_local_dir(tmp_path):
    (tmp_path / "wiki.train.tokens").write_text(" = Title = \n the cat sat on the mat \n" * 50)
    (tmp_path / "wiki.valid.tokens").write_text(" the dog sat \n" * 20)
    text = corpora.load_text(f"wikitext2:{tmp_path}")
    vocab_words = {"=", "Title", "the", "cat", "sat", "on", "mat", "<eos>", "<unk>"}
    assert text.vocab_size == len(vocab_words)
    assert int(text.val.max()) < text.vocab_size  # 'dog' mapped to <unk>


def test_cifar10_loader_from_local_dir(tmp_path):
    import pickle

    import numpy as np

    for name in ["data_batch_1", "test_batch"]:
        batch = {b"data": np.random.randint(0, 255, (20, 3072), dtype=np.uint8),
                 b"labels": list(range(10)) * 2}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    ds = data.load_images(f"cifar10:{tmp_path}")
    # validation: the last fifth of the training batches; test: the official test_batch.
    assert ds.x_train.shape == (16, 3, 32, 32) and ds.classes == 10
    assert len(ds.x_val) == 4 and len(ds.x_test) == 20
    assert 0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1


def test_missing_data_dir_is_a_user_error():
    from hpsearch.errors import UserError

    with pytest.raises(UserError, match="not found"):
        data.load_images("cifar10:/nonexistent/dir")
    with pytest.raises(UserError, match="unknown image data"):
        data.load_images("imagenet")


def test_digits_and_penguins():
    d = data.load_images("digits")
    assert d.x_train.shape[1:] == (1, 8, 8) and len(d.x_val) == 360 and len(d.x_test) == 300
    p = data.load_images("penguins")
    assert p.x_train.shape[1:] == (2, 1, 1) and p.classes == 3 and len(p.x_test) == 50


def _rows(x: torch.Tensor) -> set:
    return {bytes(r.numpy().tobytes()) for r in x.flatten(1)}


@pytest.mark.parametrize("name", ["digits", "fashion10k", "penguins"])
def test_every_image_set_holds_out_a_disjoint_test_split(name):
    d = data.load_images(name)
    assert len(d.x_test) > 0 and len(d.x_test) == len(d.y_test)
    # Same example twice would leak: no test image is a training or validation image
    # (penguins: 2 rounded features, so a few legitimate duplicates are possible).
    leaked = _rows(d.x_test) & (_rows(d.x_train) | _rows(d.x_val))
    assert len(leaked) <= (3 if name == "penguins" else 0)


def test_shakespeare_and_wikitext_hold_out_a_test_text(tmp_path):
    text = corpora.load_text("shakespeare", 20_000)
    assert len(text.test) >= 4000 and not torch.equal(text.test[:500], text.val[:500])
    (tmp_path / "wiki.train.tokens").write_text(" the cat sat \n" * 50)
    (tmp_path / "wiki.valid.tokens").write_text(" the dog sat \n" * 20)
    assert len(corpora.load_text(f"wikitext2:{tmp_path}").test) == 0  # no test file: none
    (tmp_path / "wiki.test.tokens").write_text(" the cat ran \n" * 20)
    assert len(corpora.load_text(f"wikitext2:{tmp_path}").test) == 80


def test_cifar10_loader_refuses_code_in_pickles(tmp_path):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_images(f"cifar10:{tmp_path}")


def test_networks_are_still_reachable_from_their_trainer_modules():
    """The networks moved to nets.py; code that imported them from mlp/lm/vit still works."""
    from hpsearch.trainers.lm import GPT, LSTMLM, lm_loss
    from hpsearch.trainers.mlp import ACTIVATIONS, MLP, classification_loss
    from hpsearch.trainers.vit import ViT

    assert (MLP, ACTIVATIONS, classification_loss) == (nets.MLP, nets.ACTIVATIONS,
                                                      nets.classification_loss)
    assert (GPT, LSTMLM, lm_loss, ViT) == (nets.GPT, nets.LSTMLM, nets.lm_loss, nets.ViT)
    # mlp.Config checks activations by name without torch: the same names as the networks'.
    assert set(mlp.ACTIVATION_NAMES) == set(nets.ACTIVATIONS)
    with pytest.raises(AttributeError):
        vit.NoSuchThing  # noqa: B018

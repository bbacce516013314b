"""Classifier-free guidance (diffusion.guidance): s = 0 is the unconditional model, s = 1 the conditional one, any s
is eps(empty) + s (eps(c) - eps(empty)) from one batched forward, guiding v equals guiding eps, and a whole guided
trajectory with DDPM, DDIM and DPM-Solver++ equals diffusers' guided loop (the Stable Diffusion pipelines' update)
on the same network."""

import pytest
import torch
from diffusers import UNet2DModel
from test_samplers import diffusers_sampler, ours

from playground.diffusion.guidance import classifier_free_guidance, guided_model_fn
from playground.diffusion.samplers import iter_sample, split_prediction


def conditional_unet(seed: int = 0) -> UNet2DModel:
    """A tiny class-conditional UNet: the condition is a vector added to the time embedding (class_embed_type
    "identity", as a prompt's bag of word embeddings will be)."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8, class_embed_type="identity").eval()


def network(unet):
    return lambda x, t, c: unet(x, t, class_labels=c).sample


@pytest.fixture(scope="module")
def setup():
    unet = conditional_unet()
    dim = unet.config.block_out_channels[0] * 4
    generator = torch.Generator().manual_seed(3)
    condition = torch.randn(2, dim, generator=generator)
    empty = torch.zeros(1, dim)
    x = torch.randn(2, 3, 8, 8, generator=generator)
    t = torch.tensor([700, 120])
    return unet, condition, empty, x, t


@torch.inference_mode()
def test_zero_is_unconditional_one_is_conditional_and_the_batch_is_the_formula(setup):
    unet, condition, empty, x, t = setup
    model = network(unet)
    cond, uncond = model(x, t, condition), model(x, t, empty.expand(2, -1))
    seen = []
    for scale in (0.0, 1.0, 2.5, 7.0):
        plain = guided_model_fn(model, condition, empty, scale)(x, t)
        batched = guided_model_fn(model, condition, empty, scale, on_parts=lambda c, u: seen.append((c, u)))(x, t)
        expected = uncond if scale == 0 else cond if scale == 1 else classifier_free_guidance(uncond, cond, scale)
        torch.testing.assert_close(plain, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched, expected, atol=1e-5, rtol=1e-5)  # the 2B batch: same numbers
    torch.testing.assert_close(seen[0][0], cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(seen[0][1], uncond, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cond, uncond)  # the condition matters to this network


def test_guiding_v_is_guiding_eps():
    generator = torch.Generator().manual_seed(4)
    x_t, v_cond, v_uncond = (torch.randn(3, 3, 8, 8, generator=generator) for _ in range(3))
    alpha_bar, scale = 0.3, 4.0
    _, from_guided_v = split_prediction(classifier_free_guidance(v_uncond, v_cond, scale), x_t, alpha_bar,
                                        "v_prediction")
    _, eps_cond = split_prediction(v_cond, x_t, alpha_bar, "v_prediction")
    _, eps_uncond = split_prediction(v_uncond, x_t, alpha_bar, "v_prediction")
    torch.testing.assert_close(from_guided_v, classifier_free_guidance(eps_uncond, eps_cond, scale))


@pytest.mark.parametrize("kind,steps", [("ddpm", 20), ("ddim", 20), ("dpmpp", 12)])  # DDIM: diffusers steps back
# by T // steps, so only step counts that divide T compare (as in test_samplers)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_a_guided_trajectory_equals_diffusers_guided_loop(setup, kind, steps, prediction_type):
    unet, condition, empty, _, _ = setup
    model, scale = network(unet), 3.0
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    mine = ours(kind, "linear", prediction_type, False, steps)
    with torch.inference_mode():
        *_, last = iter_sample(guided_model_fn(model, condition, empty, scale), mine, x_T,
                               generator=torch.Generator().manual_seed(6))
    theirs = diffusers_sampler(kind, "linear", prediction_type, False)
    theirs.alphas_cumprod = mine.schedule.alphas_cumprod.clone()
    theirs.set_timesteps(steps)
    generator = torch.Generator().manual_seed(6)
    latents = x_T.clone()
    labels = torch.cat([empty.expand(2, -1), condition])  # diffusers' pipelines: [uncond, cond] in one batch
    with torch.inference_mode():
        for t in theirs.timesteps:
            output = unet(torch.cat([latents] * 2), t, class_labels=labels).sample
            noise_uncond, noise_cond = output.chunk(2)
            noise_pred = noise_uncond + scale * (noise_cond - noise_uncond)
            latents = theirs.step(noise_pred, t, latents, generator=generator).prev_sample
    torch.testing.assert_close(last.prev_sample, latents, atol=1e-4, rtol=1e-4)


def test_the_vocabulary_is_the_emoji_names_words_and_unknown_words_get_the_nearest():
    from playground.data.emoji import read_emoji_test
    from playground.data.prompts import PromptError, emoji_vocabulary

    vocabulary = emoji_vocabulary(entry.name for entry in read_emoji_test())
    assert {"cat", "heart", "moon", "clock", "face", "tree", "car", "red", "smiling"} <= set(vocabulary.words)
    assert len(vocabulary) > 1000
    assert len(vocabulary.encode("Red  HEART")) == 2 and vocabulary.encode("") == []
    with pytest.raises(PromptError, match="'kat' is not a word.*nearest known words: .*cat"):
        vocabulary.encode("a kat")
    ids = vocabulary.batch(["red heart", "", "cat"])
    assert ids.shape == (3, 2) and ids[1].tolist() == [0, 0] and ids[2, 1] == 0


def test_a_zero_initialised_prompt_encoder_starts_exactly_as_the_unconditional_model():
    from playground.models import PRESETS, BagOfWords, build_unet

    plain = build_unet(PRESETS["tiny"], seed=0).eval()
    conditional = UNet2DModel(**{**plain.config, "class_embed_type": "identity"}).eval()
    conditional.load_state_dict(plain.state_dict())  # the identity embedding adds no weights: a warm start
    encoder = BagOfWords(vocabulary_size=50, dim=plain.config.block_out_channels[0] * 4)
    words = torch.tensor([[3, 17, 0], [5, 0, 0]])
    x, t = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(7)), torch.tensor([900, 50])
    with torch.inference_mode():
        torch.testing.assert_close(conditional(x, t, class_labels=encoder(words)).sample, plain(x, t).sample)
    encoder(words).sum().backward()
    assert encoder.embedding.weight.grad[0].abs().sum() == 0  # padding never learns: it stays nothing
    assert encoder.embedding.weight.grad[3].abs().sum() > 0
    torch.nn.init.normal_(encoder.embedding.weight[1:])  # once trained, the words move the model
    with torch.inference_mode():
        assert not torch.allclose(conditional(x, t, class_labels=encoder(words)).sample, plain(x, t).sample)


@torch.inference_mode()
def test_a_forward_in_pieces_is_the_same_forward_and_a_cpu_takes_cache_sized_pieces(setup):
    from playground.models import CPU_CHUNK_PIXELS, cpu_rows, in_chunks

    unet, condition, empty, x, t = setup
    model = network(unet)
    sizes = []

    def counted(x_t, t_, c=None):
        sizes.append(x_t.shape[0])
        return model(x_t, t_, c)

    x6, t6 = torch.cat([x, x, x]), torch.tensor([700, 120, 999, 1, 500, 250])
    c6 = torch.cat([condition, empty.expand(2, -1), condition])
    torch.testing.assert_close(in_chunks(counted, 4)(x6, t6, c6), model(x6, t6, c6), atol=1e-5, rtol=1e-5)
    assert sizes == [4, 2]
    guided = guided_model_fn(in_chunks(counted, 2), condition, empty, 3.0)(x, t)  # B = 2: the halves apart
    torch.testing.assert_close(guided, guided_model_fn(model, condition, empty, 3.0)(x, t), atol=1e-5, rtol=1e-5)
    assert sizes[2:] == [2, 2]
    assert cpu_rows(32) * 32 * 32 == CPU_CHUNK_PIXELS and cpu_rows(64) == cpu_rows(32) // 4 and cpu_rows(4096) == 1
    assert cpu_rows([16, 64]) == cpu_rows(32)  # a foreign folder's (height, width)

"""Prompt models: word and prompt dropout, a UNet that listens to a bag of words (zero at first: the unconditional
model it came from), prompt folders that diffusers still loads, training that learns what words mean, guided
sampling in the service and the CLI, and one sentence for every prompt that can't be followed."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from diffusers import UNet2DModel

from playground.checkpoints import load_checkpoint, load_weights_into
from playground.cli import main as cli_main
from playground.data.dataset import Dataset
from playground.data.prompts import PromptError, Vocabulary
from playground.diffusion import NoiseSchedule, make_sampler, sample
from playground.diffusion.training import (
    TrainConfig,
    draw_batch,
    draw_examples,
    draw_word_first,
    drop_words,
    new_train_state,
    train,
)
from playground.models import PRESETS, PromptedUNet, build_unet, call_model, model_fn
from playground.services import image_sampling, model_catalog, prompting
from playground.services.training_runs import RunSpec, run_training
from playground.ui.sample import guidance_markdown

from tiny_checkpoint import make_tiny_checkpoint, make_tiny_prompt_checkpoint

VOCABULARY = Vocabulary(("blue", "red", "square"))


# --- dropout of words and prompts ---

def test_drop_words_keeps_a_word_of_every_caption_and_empties_the_share_asked_for():
    words = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]]).repeat(4000, 1)
    out = drop_words(words, torch.Generator().manual_seed(0), word_dropout=0.5, prompt_dropout=0.15)
    empty = (out == 0).all(1)
    assert abs(empty.float().mean().item() - 0.15) < 0.015
    kept = out[~empty]
    assert (kept > 0).any(1).all()  # every caption that was not emptied keeps at least one word
    assert ((kept == 0) | (kept == words[~empty])).all()  # words are only removed, never moved or changed
    assert (kept[:, 3] == 0).all()  # padding stays padding
    three = words[~empty][:, 2] > 0  # captions of three words: each kept about half the time (one always kept)
    share = (kept[three][:, :3] > 0).float().mean().item()
    assert 0.5 < share < 0.65, share  # 1 - 0.5 plus the 1/8 of captions that would have lost all three, / 3
    untouched = drop_words(words, torch.Generator(), 0.0, 0.0)
    assert torch.equal(untouched, words)


def test_a_run_without_captions_draws_exactly_what_it_drew_before():
    data = torch.rand(10, 3, 8, 8) * 2 - 1
    config = TrainConfig(batch_size=6)
    plain = draw_batch(data, torch.Generator().manual_seed(3), config)
    x0, words = draw_examples(data, torch.Generator().manual_seed(3), config)
    assert torch.equal(plain, x0) and words is None
    x0_words, captions = draw_examples(data, torch.Generator().manual_seed(3), config,
                                       words=torch.arange(1, 11)[:, None])
    assert torch.equal(x0_words, plain)  # the images don't depend on whether captions come along
    assert torch.equal(data[captions[:, 0] - 1], plain)  # ...and each caption is its own image's



def test_word_first_draws_practise_every_shared_word_equally_with_the_datas_own_images():
    # captions: word 1 on 8 images, word 2 on 2 images, word 3 on 1 image only (not shared: never drawn first)
    words = torch.tensor([[1, 0]] * 6 + [[1, 2], [1, 2], [3, 0], [4, 4]])
    index, chosen = draw_word_first(words, 4000, torch.Generator().manual_seed(0))
    assert chosen.shape == (4000, 1) and set(chosen[:, 0].tolist()) == {1, 2}
    share = (chosen[:, 0] == 2).float().mean().item()
    assert abs(share - 0.5) < 0.03  # each shared word as often, however rare
    assert all(w in words[i].tolist() for i, w in zip(index.tolist(), chosen[:, 0].tolist(), strict=True))
    rare = index[chosen[:, 0] == 2]
    assert set(rare.tolist()) == {6, 7} and abs((rare == 6).float().mean().item() - 0.5) < 0.05  # its images evenly
    common = torch.bincount(index[chosen[:, 0] == 1], minlength=8)[:8].float()
    assert common.min() > 0.7 * common.mean()  # word 1: all eight of its images, evenly


def test_a_focused_batch_ends_with_single_word_examples_that_are_never_emptied():
    data = torch.arange(10).float()[:, None, None, None].expand(10, 3, 2, 2) / 10
    words = torch.tensor([[1, 5]] * 5 + [[2, 6]] * 5)
    config = TrainConfig(batch_size=20, word_focus=0.25, word_dropout=0.5, prompt_dropout=0.99)
    x0, captions = draw_examples(data, torch.Generator().manual_seed(1), config, words=words)
    assert x0.shape[0] == captions.shape[0] == 20
    focused, rest = captions[15:], captions[:15]
    assert (focused[:, 1:] == 0).all() and set(focused[:, 0].tolist()) <= {1, 2, 5, 6}  # one word each, shared ones
    image = (x0[15:, 0, 0, 0] * 10).round().long()
    assert all(w in words[i].tolist() for i, w in zip(image.tolist(), focused[:, 0].tolist(), strict=True))
    assert (rest == 0).all(1).float().mean() > 0.8  # the rest is emptied as asked (0.99)


def test_word_first_examples_can_be_trained_at_noisier_timesteps_and_the_rest_are_drawn_as_before():
    data = torch.rand(10, 3, 8, 8) * 2 - 1
    words = torch.tensor([[1, 2]] * 5 + [[1, 3]] * 5)
    model = PromptedUNet.from_unconditional(build_unet(PRESETS["tiny"], seed=0), VOCABULARY)
    schedule = NoiseSchedule.from_name("cosine", 1000)
    seen: dict[int, list[torch.Tensor]] = {}
    for min_t in (0, 900):
        config = TrainConfig(steps=3, batch_size=20, word_focus=0.25, word_focus_min_t=min_t, hflip=False)
        state = new_train_state(model, config, encoder=model.encoder)
        call = model_fn(model)
        seen[min_t] = []
        train(state, data, schedule, config, model_fn=lambda x, t, w, call=call, ts=seen[min_t]: ts.append(t)
              or call(x, t, w), words=words)
    plain, focused = torch.stack(seen[0]), torch.stack(seen[900])
    assert (focused[:, 15:] >= 900).all() and (plain[:, 15:] < 900).any()  # the last 5 of 20: word first
    # The first step's other examples keep the timesteps diffusion_loss itself would have drawn.
    torch.testing.assert_close(focused[0, :15], plain[0, :15])


# --- the network ---

def test_a_prompted_unet_starts_as_the_unconditional_one_whatever_the_prompt():
    unet = build_unet(PRESETS["tiny"], seed=1).eval()
    prompted = PromptedUNet.from_unconditional(unet, VOCABULARY).eval()
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([10, 500, 990])
    with torch.no_grad():
        expected = call_model(unet, x, t)
        torch.testing.assert_close(call_model(prompted, x, t), expected)
        torch.testing.assert_close(prompted(x, t, VOCABULARY.batch(["red", "blue square", ""])), expected)
    assert prompted.unet.config.class_embed_type == "identity"


def test_a_new_word_starts_at_zero_and_known_words_keep_their_meaning():
    prompted = PromptedUNet.from_unconditional(build_unet(PRESETS["tiny"], seed=1), VOCABULARY)
    torch.nn.init.normal_(prompted.encoder.embedding.weight)
    grown = prompted.with_vocabulary(Vocabulary(("blue", "red", "square", "zork")))
    old, new = prompted.encoder.embedding.weight, grown.encoder.embedding.weight
    for word in ("blue", "red", "square"):
        assert torch.equal(new[grown.vocabulary.index[word]], old[VOCABULARY.index[word]])
    assert new[grown.vocabulary.index["zork"]].abs().sum() == 0


# --- training learns what the words mean ---

def colour_squares() -> tuple[torch.Tensor, list[str]]:
    red = torch.tensor([1.0, -1, -1]).view(1, 3, 1, 1).expand(8, 3, 8, 8)
    blue = torch.tensor([-1.0, -1, 1]).view(1, 3, 1, 1).expand(8, 3, 8, 8)
    return torch.cat([red, blue]).contiguous(), ["red square"] * 8 + ["blue square"] * 8


@pytest.mark.slow  # 7 s
def test_training_with_captions_teaches_the_words_and_guidance_follows_them():
    data, captions = colour_squares()
    model = PromptedUNet.from_unconditional(build_unet(PRESETS["tiny"], seed=0), VOCABULARY)
    config = TrainConfig(steps=250, batch_size=16, lr=2e-3, warmup_steps=20, prompt_dropout=0.15, word_dropout=0.5,
                         encoder_lr=2e-2, hflip=False)
    state = new_train_state(model, config, encoder=model.encoder)
    assert [g["lr_scale"] for g in state.optimizer.param_groups] == [1.0, 10.0]
    schedule = NoiseSchedule.from_name(config.schedule, 1000)
    train(state, data, schedule, config, model_fn=model_fn(model), words=VOCABULARY.batch(captions))
    network = state.ema.model.eval()
    colours = {}
    for prompt in ("red", "blue"):
        generator = torch.Generator().manual_seed(1)
        x_T = torch.randn(8, 3, 8, 8, generator=generator)
        sampler = make_sampler("dpmpp", schedule, 20, prediction_type=config.prediction_type, clip_sample=1.0)
        images = sample(image_sampling.guided_fn(network, prompt, 3.0, 8), sampler, x_T, generator)
        colours[prompt] = images.mean((0, 2, 3))
    assert colours["red"][0] - colours["red"][2] > 0.5, colours  # "red" alone draws red squares...
    assert colours["blue"][2] - colours["blue"][0] > 0.5, colours  # ...and "blue" blue ones


# --- folders: saved beside a plain diffusers UNet, resumed, warm-started ---

@pytest.fixture(scope="module")
def prompt_run(tmp_path_factory):
    data, captions = colour_squares()
    dataset = Dataset("squares", data, "f" * 64, len(data), tuple(captions))
    base = make_tiny_checkpoint(tmp_path_factory.mktemp("base") / "tiny")
    run = tmp_path_factory.mktemp("run")
    config = TrainConfig(steps=6, batch_size=4, warmup_steps=2, prompt_dropout=0.15, word_dropout=0.5,
                         encoder_lr=1e-2)
    spec = RunSpec(config, model=PRESETS["tiny"], init_from=base, prompts=VOCABULARY, preview_every=1000,
                   preview_count=2)
    return base, run, dataset, spec, run_training(run, dataset, spec)


def test_a_prompt_folder_is_a_diffusers_unet_with_its_words_beside_it(prompt_run):
    _, _, _, _, folder = prompt_run
    info = json.loads((folder / "playground.json").read_text())
    assert info["prompts"]["vocabulary"] == list(VOCABULARY.words)
    assert (folder / "prompt_encoder" / "bag_of_words.safetensors").is_file()
    unet = UNet2DModel.from_pretrained(folder / "unet")  # diffusers loads the UNet as it is
    assert unet.config.class_embed_type == "identity"
    checkpoint = load_checkpoint(folder)
    assert isinstance(checkpoint.unet, PromptedUNet) and checkpoint.vocabulary == VOCABULARY
    x, t, words = torch.randn(2, 3, 8, 8), torch.tensor([100, 800]), VOCABULARY.batch(["red", "blue square"])
    with torch.no_grad():
        direct = unet(x, t, class_labels=checkpoint.unet.encoder(words)).sample
        torch.testing.assert_close(checkpoint.unet(x, t, words), direct)
    assert load_checkpoint(prompt_run[0]).vocabulary is None  # an unconditional folder has none


def test_warm_starting_from_an_unconditional_model_keeps_its_weights_and_resume_continues(prompt_run):
    base, run, dataset, spec, folder = prompt_run
    model = PromptedUNet.from_unconditional(build_unet(PRESETS["tiny"]), VOCABULARY)
    state = load_weights_into(model, base)
    assert state["encoder.embedding.weight"].abs().sum() == 0  # the unconditional base has no words: zeros
    model.load_state_dict(state)  # every UNet weight of the base, under the prompted network's names
    with torch.no_grad():
        x, t = torch.randn(1, 3, 8, 8), torch.tensor([400])
        torch.testing.assert_close(model(x, t, VOCABULARY.batch(["red"])), call_model(load_checkpoint(base).unet, x, t))
    steps_before = json.loads((folder / "playground.json").read_text())["steps"]
    longer = dataclasses.replace(spec, config=dataclasses.replace(spec.config, steps=steps_before + 2))
    run_training(run, dataset, longer)
    assert json.loads((folder / "playground.json").read_text())["steps"] == steps_before + 2


def test_a_run_of_a_prompt_model_needs_captions(tmp_path):
    data, _ = colour_squares()
    spec = RunSpec(TrainConfig(steps=1, batch_size=2), model=PRESETS["tiny"], prompts=VOCABULARY)
    with pytest.raises(ValueError, match="captions"):
        run_training(tmp_path / "run", Dataset("squares", data, "f" * 64, len(data)), spec)


# --- sampling with a prompt: the service and the CLI ---

@pytest.fixture(scope="module")
def prompt_model(tmp_path_factory):
    return make_tiny_prompt_checkpoint(tmp_path_factory.mktemp("models") / "tiny-prompts")


def test_guidance_zero_is_the_empty_prompt_and_one_is_the_plain_prompt(prompt_model):
    checkpoint = model_catalog.get_checkpoint(prompt_model)

    def result(prompt, guidance):
        *_, last = image_sampling.generate(checkpoint, "ddim", 5, 2, seed=7, prompt=prompt, guidance=guidance)
        return last.prev_sample

    empty, cat0, cat1, cat4 = result("", 3.0), result("cat", 0.0), result("cat", 1.0), result("cat", 4.0)
    torch.testing.assert_close(cat0, empty, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cat1, empty, atol=1e-3) and not torch.allclose(cat4, cat1, atol=1e-3)


def test_each_step_reports_the_guidance_numbers(prompt_model):
    checkpoint = model_catalog.get_checkpoint(prompt_model)
    updates = list(image_sampling.iter_sampling(checkpoint, "dpmpp", 4, 2, 0, show_every_s=0, animate=False,
                                                prompt="red heart", guidance=2.0))
    parts = [u.guidance for u in updates]
    assert all(p is not None and p.scale == 2.0 for p in parts)
    for p in parts:  # eps-sized numbers (about 1 for noise), the prompt making a difference
        assert p.difference > 0 and 0.1 < p.uncond < 10 and 0.1 < p.cond < 10
    markdown = guidance_markdown(parts[0], updates[0].step.t)
    assert f"{parts[0].difference:.3f}" in markdown and f"t = {updates[0].step.t}" in markdown
    plain = list(image_sampling.iter_sampling(checkpoint, "dpmpp", 4, 2, 0, show_every_s=0, animate=False))
    assert all(u.guidance is None for u in plain)


def test_prompts_that_cant_be_followed_get_one_sentence(prompt_model, tmp_path):
    checkpoint = model_catalog.get_checkpoint(prompt_model)
    with pytest.raises(PromptError, match="nearest known words: cat"):
        prompting.check_prompt(checkpoint, "kat")
    with pytest.raises(ValueError, match="between 0 and 15"):
        prompting.check_prompt(checkpoint, "cat", 40)
    plain = model_catalog.get_checkpoint(make_tiny_checkpoint(tmp_path / "plain"))
    with pytest.raises(PromptError, match="trained without prompts"):
        prompting.check_prompt(plain, "cat")
    assert prompting.check_prompt(plain, "  ", 3) == ("", 3.0)  # no prompt: any model


@pytest.mark.slow
def test_cli_samples_a_prompt_and_its_sweep_and_refuses_with_a_sentence(prompt_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["sample", "--checkpoint", str(prompt_model), "--prompt", "red heart", "--guidance", "4",
                     "--n", "2", "--steps", "3", "--sweep", "--out", str(out)]) == 0
    assert (out / "grid.png").is_file() and (out / "sweep.png").is_file()
    assert "for 'red heart' at guidance 4" in capsys.readouterr().out
    # unnamed, a prompt samples with ancestral DDPM (follows prompts better); without one, DPM-Solver++; --help says so
    for prompt, (sampler, steps) in ((["--prompt", "heart"], image_sampling.PROMPT_SAMPLING),
                                     ([], image_sampling.PLAIN_SAMPLING)):
        assert cli_main(["sample", "--checkpoint", str(prompt_model), *prompt, "--n", "1", "--out", str(out)]) == 0
        assert f"{sampler} {steps} steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["sample", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert (f"default: {image_sampling.PROMPT_SAMPLING[1]} for ddpm with --prompt, else "
            f"{image_sampling.PLAIN_SAMPLING[1]}") in helped
    assert cli_main(["sample", "--checkpoint", str(prompt_model), "--prompt", "heart", "--sampler", "ddim", "--n", "1",
                     "--out", str(out)]) == 0
    assert "ddim 25 steps" in capsys.readouterr().out
    assert cli_main(["sample", "--checkpoint", str(prompt_model), "--prompt", "hart", "--out", str(out)]) == 2
    assert "nearest known words: heart" in capsys.readouterr().err


# --- DreamBooth: a subject word ---

def test_subject_words_are_checked_in_one_sentence(prompt_model, tmp_path):
    from playground.services import finetune_recipes as recipes

    base = model_catalog.get_checkpoint(prompt_model)
    assert recipes.check_subject(base, "", " ") is None  # plain fine-tuning
    assert recipes.check_subject(base, " Zork ", "dog") == recipes.Subject("zork", "dog")
    for word, class_word, sentence in [("zork", "", "Name what your subject is"), ("", "dog", "new word too"),
                                       ("a b", "dog", "one word of 2 to 20"), ("cat", "dog", "already means"),
                                       ("zork", "dgo", "nearest known words: dog")]:
        with pytest.raises(ValueError, match=sentence):
            recipes.check_subject(base, word, class_word)
    plain = model_catalog.get_checkpoint(make_tiny_checkpoint(tmp_path / "plain"))
    with pytest.raises(ValueError, match="has no prompts"):
        recipes.check_subject(plain, "zork", "dog")


@pytest.mark.slow
def test_a_subject_run_learns_its_new_word_and_keeps_the_others(prompt_model, tmp_path):
    from PIL import Image

    from playground.services import finetune_recipes as recipes
    from playground.services import finetune_views, finetuning

    photos = [Image.new("RGB", (40, 40), (30 * i, 200, 90)) for i in range(3)]
    base = model_catalog.get_checkpoint(prompt_model)
    config = recipes.train_config("quick", base, steps=4, batch_size=4)
    run = finetuning.start_run(tmp_path / "run", photos, prompt_model, config, name="rex",
                               subject=recipes.Subject("zork", "dog"))
    settings = finetuning.run_settings(run.path)
    assert settings.subject.prompt == "zork dog"
    assert settings.config.prior_fraction >= recipes.DREAMBOOTH_PRIOR and settings.config.word_dropout == 0
    folder = finetuning.finetune(run.path)
    trained = load_checkpoint(folder)
    assert "zork" in trained.vocabulary.index and set(base.vocabulary.words) < set(trained.vocabulary.words)
    embedding = trained.unet.encoder.embedding.weight
    assert embedding[trained.vocabulary.index["zork"]].abs().sum() > 0  # it started at zero and learned
    for word in ("cat", "heart"):  # words in no caption keep their meaning (up to AdamW's small decay)
        before = base.unet.encoder.embedding.weight[base.vocabulary.index[word]]
        torch.testing.assert_close(embedding[trained.vocabulary.index[word]], before, rtol=1e-2, atol=1e-3)
    assert [caption for _, caption in finetune_views.subject_view(run.path, count=2)] == [
        "“zork dog” after training", "“dog” after training", "“dog” before (the base)"]


@pytest.mark.slow
def test_fine_tuning_a_prompt_model_without_a_subject_keeps_its_words(prompt_model, tmp_path):
    from PIL import Image

    from playground.services import finetune_recipes as recipes
    from playground.services import finetune_views, finetuning

    base = model_catalog.get_checkpoint(prompt_model)
    config = recipes.train_config("quick", base, steps=2, batch_size=2, prior_fraction=0.25)
    run = finetuning.start_run(tmp_path / "run", [Image.new("RGB", (40, 40), (200, 30, 30))], prompt_model, config)
    trained = load_checkpoint(finetuning.finetune(run.path))
    assert trained.vocabulary == base.vocabulary  # still a prompt model: the Sample tab's prompt box stays on
    assert finetune_views.subject_view(run.path) == []  # no subject: nothing to compare

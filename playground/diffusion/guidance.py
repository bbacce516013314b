"""Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance").

One network learns both the conditional model eps(x_t, c) and the unconditional one eps(x_t, empty) (the condition
is dropped to empty for a share of training batches). Sampling then uses

    eps_tilde = eps(x_t, empty) + s * (eps(x_t, c) - eps(x_t, empty))

s = 0 is the unconditional model, s = 1 the plain conditional one, s > 1 trades diversity for fidelity to c. The
combination is linear in the network's output, so guiding a v- or x_0-predicting network's raw output is the same
as guiding its eps (for a fixed x_t, eps is an affine function of the output with the same coefficients for both
terms). :func:`guided_model_fn` turns a conditional network into a plain ``model_fn`` for any sampler, with the
conditional and unconditional halves in one batched forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# The scale the app and CLI start at: on the shipped prompt model as faithful as any higher scale, with the variety of
# a lower one (bench/prompt_fidelity.py --guidance S measures it; docs/measurements.md has the figures).
DEFAULT_GUIDANCE = 5.0

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ConditionalFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def classifier_free_guidance(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """eps(empty) + s * (eps(c) - eps(empty)) (Ho & Salimans 2022, eq. 6)."""
    return uncond + scale * (cond - uncond)


def guided_model_fn(model: ConditionalFn, condition: torch.Tensor, empty: torch.Tensor, scale: float,
                    on_parts: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> ModelFn:
    """A ``model_fn(x_t, t)`` that returns the guided output for ``condition`` (B, ...) against ``empty`` (1, ...) or
    (B, ...). Both halves run as one batch of 2B; ``scale`` 0 or 1 needs only one half and runs only that one.
    ``on_parts(cond, uncond)`` sees both halves of every call (to show a learner their sizes)."""
    scale = float(scale)

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batch = x_t.shape[0]
        nothing = empty.expand(batch, *empty.shape[1:]) if empty.shape[0] == 1 else empty
        if on_parts is None and scale == 0.0:
            return model(x_t, t, nothing)
        if on_parts is None and scale == 1.0:
            return model(x_t, t, condition)
        out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([condition, nothing]))
        cond, uncond = out[:batch], out[batch:]
        if on_parts is not None:
            on_parts(cond, uncond)
        return classifier_free_guidance(uncond, cond, scale)

    return fn

"""The Gradio app: one module per tab; this one builds the Blocks and launches it."""

from __future__ import annotations

import os

import gradio as gr

from playground.data.images import MAX_FILE_BYTES
from playground.ui import edit, forward, sample, schedule, toy_lab, train

TITLE = "Diffusion Playground"

# Small images are shown enlarged; keep their pixels square and sharp instead of blurred.
CSS = """
.pixelated img { image-rendering: pixelated; }
/* Pictures that belong together stay side by side on a narrow screen. */
.side-by-side { flex-wrap: nowrap !important; gap: 6px !important; }
.side-by-side > * { min-width: 0 !important; }
/* Formulas never push the page sideways. */
.katex-display { overflow-x: auto; overflow-y: hidden; }
"""


# Gradio's Plot passes Plotly only data and layout; our animated figures carry their frames in layout.meta
# (see playground.plots._attach_frames) and this adds them to each plot once, and again when it changes.
ANIMATION_JS = """
<script>
(function () {
  function attachFrames() {
    if (!window.Plotly) return;
    document.querySelectorAll('.js-plotly-plot').forEach(function (plot) {
      var meta = plot.layout && plot.layout.meta;
      if (!meta || !meta.playground_frames || plot._playgroundToken === meta.token) return;
      plot._playgroundToken = meta.token;
      plot.dataset.framesReady = '';
      Promise.resolve(window.Plotly.deleteFrames(plot))
        .then(function () { return window.Plotly.addFrames(plot, meta.playground_frames); })
        .then(function () { plot.dataset.framesReady = String(meta.token); });
    });
  }
  setInterval(attachFrames, 150);
})();
</script>
"""


def build_app() -> gr.Blocks:
    """Every tab, wired. Build once per process; launch with :func:`launch`."""
    # Gradio's own cached outputs (every x_t picture) are swept every 10 minutes once older than an hour.
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\nSee how denoising diffusion models work, one tab at a time.")
        # On a phone the tab names wrap onto a second row rather than hiding behind a "..." menu.
        with gr.Tabs(overflow_behavior="wrap"):
            with gr.Tab("Forward", id="forward"):
                forward.build(demo)
            with gr.Tab("Schedule", id="schedule"):
                schedule.build(demo)
            with gr.Tab("Sample", id="sample"):
                sample_checkpoint = sample.build(demo)
            with gr.Tab("Edit", id="edit"):
                edit_checkpoint = edit.build(demo)
            with gr.Tab("Train", id="train"):
                train.build(demo, sample_checkpoint, edit_checkpoint)
            with gr.Tab("2-D toy lab", id="toy"):
                toy_lab.build(demo)
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False, **kwargs):
    """Launch with the app's settings; host/port fall back to GRADIO_SERVER_NAME/PORT, then 127.0.0.1:7860."""
    return demo.launch(
        server_name=host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=int(port or os.environ.get("GRADIO_SERVER_PORT") or 7860),
        share=share,
        max_file_size=MAX_FILE_BYTES,
        allowed_paths=[str(forward.EXAMPLES_DIR)],
        css=CSS,
        theme=gr.themes.Soft(),
        footer_links=["api", "gradio"],
        head=ANIMATION_JS,
        **kwargs,
    )

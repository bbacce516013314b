"""Diffusion Playground: `python app.py [--host H] [--port P] [--share]` (a Hugging Face Space runs it as is)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Diffusion Playground web app.")
    parser.add_argument("--host", help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link (needs internet)")
    args = parser.parse_args(argv)

    import playground.services.gpu  # noqa: F401 - first: on ZeroGPU it imports `spaces` before torch touches CUDA
    from playground.ui import build_app, launch  # after argparse, so --help is instant

    launch(build_app(), host=args.host, port=args.port, share=args.share)


if __name__ == "__main__":
    main()

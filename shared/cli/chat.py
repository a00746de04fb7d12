"""``python -m shared chat --model M``: talk to a model through the OpenAI-compatible API."""

from __future__ import annotations

import argparse
import sys

from shared.cli.client import AppClient, add_connection_args
from shared.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="chat with a model (interactive, or one --message)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--message", "-m", help="send one message, print the answer and exit")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    add_connection_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import openai

    client = AppClient.from_args(args).openai()
    history: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    interactive = args.message is None
    if interactive:
        print(f"chatting with {args.model} (empty line or Ctrl-D to quit)")
    while True:
        text = args.message if not interactive else _prompt()
        if not text:
            return 0
        history.append({"role": "user", "content": text})
        try:
            answer = client.chat.completions.create(
                model=args.model, messages=history, max_tokens=args.max_tokens, temperature=args.temperature
            )
        except openai.APIConnectionError as exc:
            raise CliError(f"cannot reach the chat API: {exc}") from exc
        except openai.APIStatusError as exc:
            retry = exc.response.headers.get("retry-after")
            hint = f" (retry after {retry} s)" if retry else ""
            raise CliError(f"chat failed (HTTP {exc.status_code}){hint}: {exc.message}") from exc
        content = answer.choices[0].message.content or ""
        history.append({"role": "assistant", "content": content})
        print(content if not interactive else f"{args.model}> {content}")
        if not interactive:
            return 0


def _prompt() -> str:
    try:
        return input("you> ").strip()
    except EOFError:
        print(file=sys.stderr)
        return ""

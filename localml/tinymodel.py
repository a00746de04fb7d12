"""The default base model: a tiny Llama-style chat model built here, deterministically, with no download.

Why build one: the local backend must fine-tune *something* real on 2 CPU cores in seconds, in tests and in
the demo, without network access. The model is a byte-level BPE tokenizer trained on a fixed built-in
corpus (byte fallback, so no character is ever lost to an unknown token), a Phi-3 style chat template
(``<|user|>`` ... ``<|end|>`` ``<|assistant|>``) and a 2-layer Llama with randomly initialised weights from a
fixed seed. Same library versions → same bytes; the folder is cached under ``LOCAL_STATE_DIR`` and rebuilt
only when ``TINY_MODEL_VERSION`` changes.

It knows no language before fine-tuning: everything it says afterwards comes from the training data, which
is exactly what makes it a useful probe of the whole train → register → deploy → score loop.

Heavy module (torch, transformers, tokenizers): import only in child processes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from localml.state import file_lock

TINY_MODEL_NAME = "autotune-tiny-chat"
TINY_MODEL_VERSION = "1"
SEED = 1234
VOCAB_SIZE = 1536

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

# Phi-3 style; generation prompt ends with the assistant header, every turn ends with <|end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# A fixed corpus the BPE merges are learned from: everyday and customer-support English. It only shapes
# how text is split into tokens; any other text still tokenizes (byte-level), just into more pieces.
CORPUS = """
Hello, thank you for contacting support. How can I help you today?
Hi, I have a problem with my order. It has not arrived yet and it was due last week.
I am sorry to hear that. Could you please share your order number so I can check the status?
Sure, my order number is 12345. I ordered a blue jacket and a pair of shoes.
Thanks. I can see the package is in transit and should be delivered within two business days.
I would like to return an item. The size is wrong and the color does not match the picture.
You can return any item within thirty days. I will send you a prepaid return label by email.
How do I reset my password? I forgot it and cannot log in to my account.
Click on forgot password on the login page, enter your email address and follow the link we send you.
My payment was declined but the money was taken from my card. Can you refund it?
I understand your concern. The charge is a temporary hold and will be released within five days.
Can I change the delivery address for my order? I moved to a new apartment.
Yes, as long as the order has not shipped. Please tell me the new address and I will update it.
The app keeps crashing when I open it on my phone. What should I do?
Please update the app to the latest version, restart your phone and try again. Let me know if it helps.
Do you ship internationally? I live in Canada and would like to buy a laptop.
We ship to most countries. Shipping to Canada takes five to ten days and costs are shown at checkout.
I want to cancel my subscription. How can I do that?
You can cancel anytime from your account settings under billing. Your plan stays active until the end of
the period. Is there anything else I can help you with? No, that is all. Thank you very much, have a great day!
You are welcome. Have a nice day and feel free to reach out again if you need anything.
What are your opening hours? Our store is open Monday to Friday from nine to six and Saturday from ten to four.
The product arrived damaged. The box was broken and the screen has a crack.
I apologize for the inconvenience. We will send a replacement right away at no extra cost.
Where is my invoice? I need it for my company. You can download every invoice from the orders page.
Is the item in stock? When will it be available again? It is back in stock next Tuesday.
Can I speak to a manager? I will escalate your request and a manager will call you back tomorrow.
the a an and or but if then than so because when where what which who why how this that these those
is are was were be been being have has had do does did will would can could should may might must
i you he she it we they me him her us them my your his its our their mine yours
account order orders shipping delivery refund return exchange payment card invoice price discount code
coupon warranty repair replacement product item package tracking number email phone address password
login subscription plan billing charge fee store online website app update version device laptop
please thanks thank sorry welcome help support customer service agent team today tomorrow week month
yes no okay sure great good bad new old first last next one two three four five six seven eight nine ten
0 1 2 3 4 5 6 7 8 9 . , ! ? : ; ' " ( ) - / @ # $ % & * + =
"""


def tiny_model_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "base_models" / f"{TINY_MODEL_NAME}-v{TINY_MODEL_VERSION}"


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in CORPUS.strip().splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


def _write_model(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = _build_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        model_max_length=1024,
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "autotune_base_model.json").write_text(
        json.dumps({"name": TINY_MODEL_NAME, "version": TINY_MODEL_VERSION, "seed": SEED}, indent=2) + "\n"
    )


def ensure_tiny_model(state_dir: str | os.PathLike[str]) -> Path:
    """Build the tiny model once (under a lock, atomically) and return its folder."""
    target = tiny_model_dir(state_dir)
    if (target / "autotune_base_model.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if (target / "autotune_base_model.json").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            build_tiny_model(tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tiny_model(out: str | os.PathLike[str]) -> Path:
    """Write the tiny model into ``out`` (no caching; ``ensure_tiny_model`` caches)."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    _write_model(path)
    return path


def export_untrained(state_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """The (cached) tiny base model exported as an MLflow model folder: a deployable model with no training,
    for tests of endpoints and deployments. It answers, but with noise."""
    from localml.training import export_mlflow

    base = ensure_tiny_model(state_dir)
    return export_mlflow(base, Path(out), {"base_model_name": TINY_MODEL_NAME, "untrained": True})


def main(argv: list[str]) -> int:
    """``python -m localml.tinymodel OUT`` (Hugging Face folder) or ``--mlflow STATE_DIR OUT``."""
    if argv[:1] == ["--mlflow"] and len(argv) == 3:
        print(export_untrained(argv[1], argv[2]))
    elif len(argv) == 1:
        print(build_tiny_model(argv[0]))
    else:
        print("usage: python -m localml.tinymodel OUT | --mlflow STATE_DIR OUT")
        return 2
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Writes hf_corpus_extra.json: inputs for the tokenizer.json goldens that one-line corpus files
cannot hold or that target tokenizer.json features: multi-line documents (newline runs, CRLF, code),
special-token text inside ordinary text, byte-level and metaspace lookalikes, contractions in any
case, digit runs, whitespace runs. Deterministic; stdlib only:

    python3 tests/data/tokenizer/make_hf_corpus_extra.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<s>", "</s>", "<unk>", "<bos>", "<eos>", "<start_of_turn>",
            "<end_of_turn>", "<pad>", "<｜begin▁of▁sentence｜>", "<｜User｜>", "<|return|>",
            "<|channel|>", "<think>", "</think>", "<tool_call>", "<0x41>", "<0xE4>", "<unused5>"]


def main():
    entries = []
    for s in SPECIALS:
        entries += [s, "a" + s + "b", " " + s + " ", "x " + s + "\n" + s + s + "y", s[:-1], s + s[1:]]
    entries += ["Hello<|im_start|>world", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                "<s>[INST] hi [/INST]", "text</s><s>more", "<<SYS>>\nsys\n<</SYS>>"]
    for word in ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'d", "'D"]:
        entries += ["it" + word + " here", "IT" + word + "x", word]
    entries += ["don't DON'T Don'T we'LL they'Re", "rock'n'roll 'quoted' ''double''"]
    digits = "0123456789"
    for n in range(1, 14):
        entries.append(digits[:n] if n <= 10 else digits * (n - 9))
    entries += ["12345678901234567890", "1,234,567.89", "3.14159e-10", "v1.2.3-rc4", "0x7fffffff", "٣٤٥ ३४५ ๓๔๕",
                "²³ ½ ⅓ Ⅻ ①②", "a1b22c333d4444"]
    for ws in [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n ", "\u00a0", "\u3000",
               "\u2003", " \t \n"]:
        entries += [ws, "a" + ws + "b", ws + "lead", "trail" + ws, "x" + ws * 5 + "y"]
    entries += ["Ġ ĠĠ Ċ ċ ▁ ▁▁ ▁x x▁ Âł", "ĠHello▁World", "\u2581\u2581 leading metaspace"]
    entries += ["\ufeffBOM at start", "zero\u200bwidth\u200djoin", "e\u0301 vs \u00e9, A\u030a vs \u00c5", "ﬁ ﬂ ﬃ Ⅸ ㎏ ℌ ｶ",
                "İstanbul ΣΑΣ ẞ ß ǅ", "\x00nul\x01ctl\x7fdel", "\ud7ff\ue000\U0010fffd", "🏳️‍🌈👩‍👩‍👧‍👦🇺🇳#️⃣"]
    # Whole documents: every demo text file, and code, with their newlines.
    text_dir = os.path.join(REPO, "tools", "demo_model", "text")
    for name in sorted(os.listdir(text_dir)):
        with open(os.path.join(text_dir, name), encoding="utf-8") as f:
            doc = f.read()
        entries.append(doc[:6000])
        entries.append(doc[:3000].replace("\n", "\r\n"))
    for rel in ["model/tokenizer/bpe.cc", "tests/data/tokenizer/make_corpus.py", "scripts/install-deps.sh",
                "tools/CMakeLists.txt"]:
        with open(os.path.join(REPO, rel), encoding="utf-8") as f:
            entries.append(f.read()[:5000])
    with open(os.path.join(HERE, "hf_corpus_extra.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"hf_corpus_extra.json: {len(entries)} entries")


if __name__ == "__main__":
    main()

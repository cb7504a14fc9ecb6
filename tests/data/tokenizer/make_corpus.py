#!/usr/bin/env python3
"""Writes the tokenizer test corpus: corpus_train.txt and corpus_heldout.txt (UTF-8, one line each).

Deterministic (fixed seed, Python 3 stdlib only): rerunning it reproduces the committed files
byte for byte. Run from anywhere:

    python3 tests/data/tokenizer/make_corpus.py

The tokenizer parity test (tests/unit/tokenizer) trains sentencepiece models on
corpus_train.txt only and compares longbow's tokenizer with the library on every line of both
files. corpus_heldout.txt additionally carries characters that never occur in training (rare
scripts, private-use and astral-plane characters, stray control characters, carriage returns),
so encoding them exercises unknown-piece handling and byte fallback.

Line kinds: English prose; text in many scripts (CJK, kana, hangul, Cyrillic, Greek, Arabic,
Hebrew, Devanagari, Thai, accented Latin, Vietnamese); combining marks (decomposed accents);
NFKC-relevant characters (full-width forms, ligatures, compatibility and enclosed forms, odd
spaces); emoji (skin tones, ZWJ sequences, flags, keycaps); whitespace runs, tabs, leading and
trailing spaces, empty and blank lines; the user-defined and control symbols the test trains
with; code and numbers; and long lines (several KB).
"""

import os
import random

SEED = 20261122
TRAIN_LINES = 1600
HELDOUT_LINES = 640

WORDS = (
    "the of and to in is was that for on with as by at from his her they this have had not are but "
    "were which one all their there been has when who will more no if out so said what up its about "
    "into than them can only other new some could time these two may then do first any my now such "
    "like our over man me even most made after also did many before must through back years where "
    "much your way well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under never day same "
    "another know while last might us great old year off come since against go came right used take "
    "three tokenizer sentencepiece attention context window kernel paged cache decode prefill sparse "
    "indexer latency throughput batch scheduler request stream server model weights tensor layer"
).split()

CJK = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对"
    "可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公"
    "同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正"
    "名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并"
    "内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表"
)
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノ"
HANGUL = "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후한국어문장입니다합니다있습니다"
CYRILLIC_WORDS = "привет мир язык модель текст слово быстро медленно внимание контекст сервер запрос ответ данные".split()
GREEK_WORDS = "καλημέρα κόσμος γλώσσα μοντέλο κείμενο λέξη γρήγορα προσοχή διακομιστής αίτημα".split()
ARABIC_WORDS = "مرحبا العالم اللغة النموذج النص كلمة سريع الانتباه الخادم الطلب البيانات".split()
HEBREW_WORDS = "שלום עולם שפה מודל טקסט מילה מהר תשומת לב שרת בקשה".split()
DEVANAGARI_WORDS = "नमस्ते दुनिया भाषा मॉडल पाठ शब्द तेज़ ध्यान सर्वर अनुरोध डेटा हिन्दी".split()
THAI_WORDS = "สวัสดี โลก ภาษา แบบจำลอง ข้อความ คำ เร็ว ความสนใจ".split()
LATIN_ACCENTED_WORDS = (
    "café naïve résumé façade Übermaß Straße Ångström señor niño São Paulo Kraków Łódź Dvořák "
    "Tiếng Việt Hà Nội Nguyễn phở cà phê Ørsted Þórr Çelik İstanbul ğüşöç"
).split()
# Decomposed accents (base letter + combining mark), which NFKC composes.
COMBINING = ["e\u0301", "a\u0300", "o\u0308", "n\u0303", "c\u0327", "u\u030a", "i\u0302", "z\u030c",
             "A\u0323\u0302", "q\u0307\u0323", "x\u0334", "g\u0361h"]
NFKC_FORMS = [
    "ＡＢＣ", "ｆｕｌｌ－ｗｉｄｔｈ", "１２３４５", "ﬁnance", "ﬂow", "ﬀ", "ﬃ", "㍿", "㎏", "㎞", "①②③",
    "½", "¼", "™", "℡", "Ⅻ", "ⅷ", "㈱", "ｶﾀｶﾅ", "ﾊﾟﾋﾟ", "x²", "H₂O", "µ", "Å", "Ω", "ℌ",
    "\u00a0nbsp\u00a0", "ideo\u3000space", "en\u2002space", "thin\u2009space", "zero\u200bwidth",
    "soft\u00adhyphen", "bom\ufeffchar", "…", "‼", "⁇", "ſ", "ǆ", "ĳ", "№", "℃", "㌔", "︵", "﹏",
]
EMOJI = [
    "😀", "😂", "🥲", "🤖", "🚀", "🔥", "❤️", "✨", "👍", "👍🏽", "👋🏿", "🧑🏻‍💻", "👨‍👩‍👧‍👦",
    "🏳️‍🌈", "🇯🇵", "🇺🇸", "🇩🇪", "1️⃣", "#️⃣", "☕", "🐍", "🦀", "🧪", "🫠",
]
USER_SYMBOLS = ["<sep>", "<tool>", "[[MASK]]", "™", "ＡＢ"]
CONTROL_SYMBOLS = ["<ctrl0>", "<ctrl1>"]
# Only in held-out lines: characters training never sees.
RARE = [
    "𐀀", "𒀀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝕏", "ᚠᚢᚦ", "ⵜⵉⴼⵉⵏⴰⵖ", "\ue000", "\U000f0000", "𠀀𠀁", "ꙮ", "ᏣᎳᎩ",
    "ꦗꦮ", "ᠮᠣᠩᠭᠣᠯ", "ༀ", "ဿ", "ᐃᓄᒃᑎᑐᑦ", "🜁", "𓀀𓁐", "\u0007", "\u001b[0m", "\u007f", "\u0085",
    "\u2028", "\r", "\u0000",
]


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def sentence(rng):
    s = words(rng, rng.randint(4, 18))
    s = s[0].upper() + s[1:]
    if rng.random() < 0.3:
        s += ", " + words(rng, rng.randint(2, 8))
    if rng.random() < 0.2:
        s += " " + str(rng.randint(0, 100000))
    return s + rng.choice([".", ".", ".", "?", "!", ";", ":"])


def chars(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def script_line(rng):
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(11)
        if kind == 0:
            parts.append(chars(rng, CJK, 4, 20) + "。")
        elif kind == 1:
            parts.append(chars(rng, KANA, 3, 12) + chars(rng, CJK, 1, 4))
        elif kind == 2:
            parts.append(" ".join(chars(rng, HANGUL, 2, 5) for _ in range(rng.randint(2, 5))))
        elif kind == 3:
            parts.append(" ".join(rng.choice(CYRILLIC_WORDS) for _ in range(rng.randint(2, 7))))
        elif kind == 4:
            parts.append(" ".join(rng.choice(GREEK_WORDS) for _ in range(rng.randint(2, 6))))
        elif kind == 5:
            parts.append(" ".join(rng.choice(ARABIC_WORDS) for _ in range(rng.randint(2, 6))))
        elif kind == 6:
            parts.append(" ".join(rng.choice(HEBREW_WORDS) for _ in range(rng.randint(2, 6))))
        elif kind == 7:
            parts.append(" ".join(rng.choice(DEVANAGARI_WORDS) for _ in range(rng.randint(2, 6))) + "।")
        elif kind == 8:
            parts.append("".join(rng.choice(THAI_WORDS) for _ in range(rng.randint(2, 5))))
        elif kind == 9:
            parts.append(" ".join(rng.choice(LATIN_ACCENTED_WORDS) for _ in range(rng.randint(2, 6))))
        else:
            parts.append(words(rng, 2) + " " + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 4))))
    return " ".join(parts)


def nfkc_line(rng):
    out = []
    for _ in range(rng.randint(2, 6)):
        out.append(rng.choice(NFKC_FORMS) if rng.random() < 0.6 else rng.choice(WORDS))
    return " ".join(out)


def emoji_line(rng):
    out = []
    for _ in range(rng.randint(2, 7)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(EMOJI))
        elif r < 0.7:
            out.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(2, 4))))
        else:
            out.append(rng.choice(WORDS))
    return " ".join(out)


def whitespace_line(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return ""
    if kind == 1:
        return " " * rng.randint(1, 6)
    if kind == 2:
        return "\t" * rng.randint(1, 3)
    if kind == 3:
        return " " * rng.randint(1, 5) + sentence(rng) + " " * rng.randint(0, 4)
    if kind == 4:
        return sentence(rng).replace(" ", " " * rng.randint(2, 5))
    if kind == 5:
        return "\t".join(words(rng, rng.randint(1, 3)) for _ in range(rng.randint(2, 5)))
    if kind == 6:
        return " \t " + words(rng, 4) + "\t\t" + words(rng, 3) + " \u3000 "
    return "x" + " " * rng.randint(3, 9) + "y"


def symbol_line(rng):
    out = []
    for _ in range(rng.randint(3, 8)):
        r = rng.random()
        if r < 0.3:
            out.append(rng.choice(USER_SYMBOLS))
        elif r < 0.4:
            out.append(rng.choice(CONTROL_SYMBOLS))
        elif r < 0.5:
            # Glued to words on both sides, so matching must find them mid-word.
            out.append(rng.choice(WORDS) + rng.choice(USER_SYMBOLS) + rng.choice(WORDS))
        else:
            out.append(rng.choice(WORDS))
    return " ".join(out)


def code_line(rng):
    name = rng.choice(WORDS) + "_" + rng.choice(WORDS)
    templates = [
        "def {n}(x, y=%d):  # returns x*y" % rng.randint(0, 99),
        "    if ({n} >= %d) {{ return {n}[%d]; }}" % (rng.randint(0, 999), rng.randint(0, 9)),
        "{n} = {{\"key\": [1, 2.5e-3, null], 'v': 0x%X}}" % rng.randint(0, 65535),
        "https://example.com/{n}?q=%d&lang=en#frag" % rng.randint(0, 10**6),
        "%d.%d.%d.%d:%d" % (rng.randint(1, 255), rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255),
                            rng.randint(1, 65535)),
        "$ cmake --build build -j%d && ctest -R {n}" % rng.randint(1, 64),
        "{n}\t%0.6f\t%d" % (rng.random() * 1000, rng.randint(-10**9, 10**9)),
    ]
    return rng.choice(templates).format(n=name)


def long_line(rng, target):
    parts = []
    size = 0
    while size < target:
        r = rng.random()
        if r < 0.6:
            p = sentence(rng)
        elif r < 0.8:
            p = script_line(rng)
        elif r < 0.9:
            p = emoji_line(rng)
        else:
            p = nfkc_line(rng)
        parts.append(p)
        size += len(p.encode("utf-8")) + 1
    return " ".join(parts)


def rare_line(rng):
    out = []
    for _ in range(rng.randint(2, 6)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(RARE))
        elif r < 0.7:
            out.append(rng.choice(WORDS) + rng.choice(RARE) + rng.choice(WORDS))
        else:
            out.append(rng.choice(WORDS))
    return " ".join(out)


GENERATORS = [
    (sentence, 30),
    (script_line, 25),
    (nfkc_line, 8),
    (emoji_line, 8),
    (whitespace_line, 8),
    (symbol_line, 8),
    (code_line, 6),
]


def make_lines(rng, count, heldout):
    lines = []
    gens = [g for g, w in GENERATORS for _ in range(w)]
    while len(lines) < count:
        r = rng.random()
        if r < 0.01:
            line = long_line(rng, rng.randint(2000, 4000))
        elif heldout and r < 0.25:
            line = rare_line(rng)
        else:
            line = rng.choice(gens)(rng)
        assert "\n" not in line
        lines.append(line)
    return lines


def write(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(SEED)
    train = make_lines(rng, TRAIN_LINES, heldout=False)
    heldout = make_lines(rng, HELDOUT_LINES, heldout=True)
    # A few lines far longer than the trainer's 4192-byte limit: they are skipped in training but
    # must still encode exactly.
    heldout += [long_line(rng, 9000), long_line(rng, 16000)]
    write(os.path.join(here, "corpus_train.txt"), train)
    write(os.path.join(here, "corpus_heldout.txt"), heldout)


if __name__ == "__main__":
    main()

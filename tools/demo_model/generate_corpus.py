#!/usr/bin/env python3
"""Writes text/en_generated.txt: extra English for the demo tokenizer's training corpus.

The hand-written texts beside it (text/*.txt) carry the variety of styles and languages; this adds
volume with simple, grammatical sentences built from templates and word lists, plus arithmetic,
dates and short dialogues, so the BPE merges see common English words many times. Deterministic:
a fixed seed and only the standard library.

    python3 tools/demo_model/generate_corpus.py            # rewrites text/en_generated.txt
"""
import pathlib
import random

SEED = 20261122
TARGET_BYTES = 72_000

NAMES = ["Ada", "Ben", "Clara", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Liam",
         "Mei", "Nadia", "Oscar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yusuf", "Zoe"]
PLACES = ["the harbour", "the old library", "the market square", "the railway station", "the village hall",
          "the top of the hill", "the riverbank", "the bakery", "the school gate", "the garden centre",
          "the museum", "the bus stop", "the football ground", "the beach", "the bridge", "the post office",
          "the corner shop", "the castle ruins", "the allotments", "the swimming pool"]
OBJECTS = ["an umbrella", "a bicycle", "a notebook", "a loaf of bread", "a pair of boots", "a map",
           "a basket of apples", "a kite", "a lantern", "a letter", "a wooden box", "a violin", "a teapot",
           "a camera", "a jar of honey", "a chess set", "a telescope", "a red scarf", "a paper boat", "a key"]
ADJECTIVES = ["quiet", "bright", "cold", "warm", "busy", "narrow", "ancient", "tiny", "enormous", "gentle",
              "strange", "cheerful", "windy", "muddy", "golden", "grey", "crowded", "peaceful", "noisy", "familiar"]
VERBS_PAST = ["found", "carried", "borrowed", "painted", "repaired", "lost", "bought", "sold", "wrapped",
              "forgot", "noticed", "opened", "hid", "shared", "dropped", "cleaned", "measured", "returned"]
TIMES = ["early in the morning", "just after lunch", "late in the evening", "before sunrise", "at midnight",
         "on Sunday afternoon", "on a rainy Tuesday", "in the middle of winter", "at the end of summer",
         "during the holidays", "one foggy morning", "the following week", "a long time ago", "yesterday"]
FEELINGS = ["happy", "tired", "surprised", "worried", "proud", "curious", "relieved", "hungry", "calm",
            "excited", "puzzled", "grateful"]
WEATHER = ["it was raining", "the sun was shining", "a strong wind was blowing", "snow was falling",
           "the sky was clear", "thunder rumbled in the distance", "mist hung over the fields",
           "the air smelled of cut grass"]
TOPICS = ["birds", "old maps", "the history of the town", "growing tomatoes", "how clocks work",
          "the stars", "trains", "cooking with spices", "the sea", "mountains", "learning to draw", "bees"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                "nineteen", "twenty"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def story_sentence(r):
    name, other = r.sample(NAMES, 2)
    templates = [
        lambda: f"{r.choice(TIMES).capitalize()}, {name} {r.choice(VERBS_PAST)} {r.choice(OBJECTS)} near {r.choice(PLACES)}.",
        lambda: f"{name} walked to {r.choice(PLACES)} while {r.choice(WEATHER)}, feeling {r.choice(FEELINGS)}.",
        lambda: f"When {name} reached {r.choice(PLACES)}, {other} was already waiting with {r.choice(OBJECTS)}.",
        lambda: f"The {r.choice(ADJECTIVES)} streets around {r.choice(PLACES)} were {r.choice(ADJECTIVES)} {r.choice(TIMES)}.",
        lambda: f"{name} told {other} a long story about {r.choice(TOPICS)}, and {other} listened without saying a word.",
        lambda: f"Nobody knew why {name} had {r.choice(VERBS_PAST)} {r.choice(OBJECTS)}, but everyone had a theory.",
        lambda: f"{name} and {other} spent the afternoon at {r.choice(PLACES)} talking about {r.choice(TOPICS)}.",
        lambda: f"It was a {r.choice(ADJECTIVES)} day, and {name} was {r.choice(FEELINGS)} to be outside.",
        lambda: f"{other} said that {r.choice(PLACES)} had been {r.choice(ADJECTIVES)} ever since {r.choice(TIMES)}.",
        lambda: f"{name} wrote in {r.choice(['a diary', 'a letter', 'a notebook'])} that {r.choice(WEATHER)} and everything seemed {r.choice(ADJECTIVES)}.",
    ]
    return r.choice(templates)()


def arithmetic_line(r):
    a, b = r.randint(0, 99), r.randint(0, 99)
    kind = r.randrange(4)
    if kind == 0:
        return f"What is {a} plus {b}? The answer is {a + b}."
    if kind == 1:
        big, small = max(a, b), min(a, b)
        return f"If you take {small} away from {big}, you are left with {big - small}."
    if kind == 2:
        x, y = r.randint(2, 12), r.randint(2, 12)
        return f"{x} times {y} is {x * y}, and {x * y} divided by {y} is {x}."
    n = r.randint(0, 20)
    return f"The number {n} is written as \"{NUMBER_WORDS[n]}\" in words."


def date_line(r):
    day, month, year = r.randint(1, 28), r.randrange(12), r.randint(1900, 2030)
    hour, minute = r.randint(0, 23), r.randrange(0, 60, 5)
    return (f"The meeting was moved to {DAYS[r.randrange(7)]}, {day} {MONTHS[month]} {year}, "
            f"at {hour:02d}:{minute:02d} ({year}-{month + 1:02d}-{day:02d}).")


def dialogue(r):
    a, b = r.sample(NAMES, 2)
    obj, place = r.choice(OBJECTS), r.choice(PLACES)
    lines = [
        f"\"Have you seen {obj}?\" asked {a}.",
        f"\"I think I left it at {place},\" said {b}.",
        f"\"Then we should go back before it gets dark.\"",
        f"\"Or we could wait until tomorrow,\" {b} suggested, looking at the {r.choice(ADJECTIVES)} sky.",
    ]
    return " ".join(lines[: r.randint(2, 4)])


def paragraph(r):
    parts = []
    for _ in range(r.randint(3, 7)):
        roll = r.random()
        if roll < 0.6:
            parts.append(story_sentence(r))
        elif roll < 0.75:
            parts.append(arithmetic_line(r))
        elif roll < 0.85:
            parts.append(date_line(r))
        else:
            parts.append(dialogue(r))
    return " ".join(parts)


def main():
    r = random.Random(SEED)
    lines, size = [], 0
    while size < TARGET_BYTES:
        line = paragraph(r)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    out = pathlib.Path(__file__).resolve().parent / "text" / "en_generated.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({size} bytes, {len(lines)} paragraphs)")


if __name__ == "__main__":
    main()

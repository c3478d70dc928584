"""Builds the related-task sequence (docs/BENCHMARK.md) from the starter
packs' training text: two pairs of tasks of the same kind of text, so that a
method can reuse on the second task of a pair what the first one taught it.

- Shakespeare's speeches cut in two in order: the first half of the plays and
  the second half, one kind of text from different works.
- The World English Bible's passages cut by chapter: odd chapters and even
  chapters of the same books, two halves of one text.

Each task's held-out samples are a seeded tenth of its own half, in a seeded
order (so that `--max-heldout` keeps a random subset): a task is scored on the
text it was taught, not on another book. The packs' own held-out files (other
plays, other books) are not used here.

    python3 scripts/data/related.py --packs www/packs --out data/related
"""

import argparse
import os
import random
import re

HELDOUT_SHARE = 0.1
SEED = 17


def samples(path):
    """The file's samples (blank-line separated), in order."""
    text = open(path, encoding="utf-8").read()
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def in_order(parts):
    """The first half of the samples and the second."""
    middle = len(parts) // 2
    return parts[:middle], parts[middle:]


CHAPTER = re.compile(r"^.*? (\d+):\d+ ")


def by_chapter(parts):
    """The passages of odd chapters and those of even chapters."""
    def chapter(part):
        found = CHAPTER.match(part)
        if found is None:
            raise SystemExit("not a 'Book chapter:verse' passage: " + part[:60])
        return int(found.group(1))
    return ([p for p in parts if chapter(p) % 2 == 1],
            [p for p in parts if chapter(p) % 2 == 0])


# corpus, how it is cut, the names of its two halves
PAIRS = [("shakespeare", in_order, ("shakespeare_a", "shakespeare_b")),
         ("bible_web", by_chapter, ("bible_a", "bible_b"))]


def split(parts, rng):
    """Training samples (in order) and held-out ones (a seeded order)."""
    held = set(rng.sample(range(len(parts)), max(1, round(len(parts) * HELDOUT_SHARE))))
    train = [p for i, p in enumerate(parts) if i not in held]
    heldout = [parts[i] for i in sorted(held)]
    rng.shuffle(heldout)
    return train, heldout


def write(folder, name, parts):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(SEED)
    for corpus, cut, names in PAIRS:
        parts = samples(os.path.join(args.packs, corpus, "train.txt"))
        for name, half in zip(names, cut(parts)):
            train, heldout = split(half, rng)
            folder = os.path.join(args.out, name)
            write(folder, "train.txt", train)
            write(folder, "test.txt", heldout)
    print("related sequence in", args.out + ":", " ".join(n for _, _, pair in PAIRS for n in pair))


if __name__ == "__main__":
    main()

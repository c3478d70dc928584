"""Builds the related-task sequence (docs/BENCHMARK.md) from the starter
packs: each of two corpora cut into two halves in order, as two tasks of the
same kind of text, so that a method can reuse what the first half taught it
on the second. Shakespeare's speeches (plays in order) and the World English
Bible's passages (books in order); the held-out samples are cut the same way.

    python3 scripts/data/related.py --packs www/packs --out data/related
"""

import argparse
import os

# corpus, the names of its two halves
PAIRS = [("shakespeare", ("shakespeare_a", "shakespeare_b")),
         ("bible_web", ("bible_a", "bible_b"))]


def halves(path):
    """The file's samples (blank-line separated) in order, cut in two."""
    text = open(path, encoding="utf-8").read()
    parts = [p.strip() for p in text.split("\n\n") if p.strip()]
    middle = len(parts) // 2
    return parts[:middle], parts[middle:]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for corpus, names in PAIRS:
        for split in ("train", "test"):
            for name, part in zip(names, halves(os.path.join(args.packs, corpus, split + ".txt"))):
                folder = os.path.join(args.out, name)
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, split + ".txt"), "w", encoding="utf-8") as f:
                    f.write("\n\n".join(part) + "\n")
    print("related sequence in", args.out + ":", " ".join(n for _, pair in PAIRS for n in pair))


if __name__ == "__main__":
    main()

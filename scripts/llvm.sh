#!/usr/bin/env bash
# Installs the LLVM that the `cuda` feature links, from Debian's archive instead
# of github.com. Run it once before `cargo check/build --features cuda`. Safe to
# run again: it does nothing when the install is there and matches the pin.
#
# Why this exists. burn's CUDA backend (cubecl-cuda) always depends on
# cubecl-llvm, which links LLVM 23 statically (it compiles kernels to PTX with
# it). cubecl-llvm finds LLVM through tracel-llvm-bundler, whose build script
# downloads a prebuilt LLVM from github.com/tracel-ai/tracel-llvm into
#   $XDG_DATA_HOME (default ~/.local/share)/tracel/tracel-llvm-<bundler version>
# unless the file `.tracel-llvm-installed` is already there. Our machines reach
# only the package registries, so that download fails. This script fills the
# same directory from Debian sid's llvm-23-dev package (static libraries,
# headers and CMake files of LLVM 23.1), then writes the sentinel, so the
# bundler's build script does nothing and the build uses this LLVM.
#
# What is not Debian's own: Debian's llvm-config binary needs glibc 2.38 and
# cannot run on Debian 12, so bin/llvm-config here is a shell script written by
# this one. It answers the queries the build makes (`--link-static` with
# `--libs`, `--libnames`, `--system-libs`, `--libdir`, `--includedir`,
# `--cxxflags`, `--cflags`, `--version`; see tracel-llvm-bundler's
# src/config.rs), with answers worked out here from the package's CMake files:
#   --libs         every static LLVM library the package exports, in link
#                  order (a topological sort of LLVMExports.cmake), plus
#                  libmose_glibc_compat (below);
#   --system-libs  the system libraries LLVMSupport links (as llvm-config
#                  reports them), plus libxml2 when LLVM was built with it;
#   --cxxflags     -std=c++17, LLVM_DEFINITIONS, and -fno-exceptions when
#                  LLVM_ENABLE_EH is off (as llvm-config composes them).
# Debian sid builds LLVM against its own glibc (2.43 when this was written),
# so its C++ code calls the C23 names __isoc23_strtol/strtoll/strtoull, which
# appeared in glibc 2.38; Debian 12 has 2.36.
# lib/libmose_glibc_compat.a defines them as the C23 standard says: the old
# strtol & co., which additionally read a "0b"/"0B" prefix in base 0 or 2.
# (LLVM's Interpreter also calls __isoc23_sscanf; cubecl-llvm does not use it,
# so it is not provided.) Every other outside symbol the archives use is in
# Debian 12's libc, libm and libstdc++ (gcc 12), or in libraries cubecl-llvm
# does not link (curl, libpfm, Polly): checked with nm when this was written.
# The script ends by compiling, linking and running a
# small program that emits PTX through this LLVM, so a broken install fails
# here, with the linker's own message, and not deep inside cargo.
#
# The .deb is pinned by version and SHA256. Debian keeps only current versions
# in its pool, so the pinned file disappears when sid moves on; the script then
# looks up the current llvm-23-dev in sid's signed index (checked with gpgv
# against debian-archive-keyring) and says what to pin instead. Set
# LLVM_DEB_FOLLOW_SID=1 to use that version without editing the pin.
#
# Environment: MOSE_CACHE (download cache, default ~/.cache/mose-lab),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), XDG_DATA_HOME.
# Needs: curl, dpkg-deb, tar, cc/c++ (gcc), ar, sha256sum, tsort; gpgv only when
# the pin is stale; root or sudo only if a -dev package for a system library
# is missing (it is installed with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

pin_version='1:23.1.4-2'
pin_file='pool/main/l/llvm-toolchain-23/llvm-23-dev_23.1.4-2_amd64.deb'
pin_sha256='5c0e1f4d633784a6320b1d30e5af3d433de656a977ed2795a158b21375554f07'
package='llvm-23-dev'
llvm_dir='usr/lib/llvm-23'   # where the package puts LLVM 23
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${MOSE_CACHE:-$HOME/.cache/mose-lab}/llvm"

step() { printf '\n== llvm: %s\n' "$*" >&2; }
die() { printf 'llvm.sh: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

[ "$(uname -s)/$(uname -m)" = Linux/x86_64 ] ||
  die "only Linux x86_64 is handled (this is $(uname -s)/$(uname -m)); the Debian package is amd64"
for tool in curl dpkg-deb tar cc c++ ar sha256sum tsort awk; do
  command -v "$tool" >/dev/null 2>&1 || die "needs '$tool' on PATH"
done

# The bundler's version names its directory; read it from Cargo.lock so the
# two cannot drift apart.
bundler=$(awk '/^name = "tracel-llvm-bundler"$/ { getline; gsub(/^version = "|"$/, ""); print; exit }' Cargo.lock)
[ -n "$bundler" ] || die "Cargo.lock has no tracel-llvm-bundler; nothing to install for"
# dirs::data_local_dir() on Linux: $XDG_DATA_HOME when absolute, else ~/.local/share.
case "${XDG_DATA_HOME:-}" in /*) data_home=$XDG_DATA_HOME ;; *) data_home=$HOME/.local/share ;; esac
prefix="$data_home/tracel/tracel-llvm-$bundler"
sentinel="$prefix/.tracel-llvm-installed"
stamp="$prefix/.mose-lab-llvm"

if [ -e "$sentinel" ]; then
  if [ ! -e "$stamp" ]; then
    step "a tracel LLVM bundle is already installed in $prefix; leaving it alone"
    exit 0
  fi
  if [ "$(cat "$stamp")" = "$package $pin_version $pin_sha256" ] || [ -n "${LLVM_DEB_FOLLOW_SID:-}" ]; then
    step "already installed: $(cat "$stamp") in $prefix"
    exit 0
  fi
  step "installed $(cat "$stamp") differs from the pin; reinstalling"
fi

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Downloads $1 (a path under the mirror) to $2, unless $2 already has SHA256 $3.
fetch() {
  local url="$mirror/$1" dest=$2 want=$3
  if [ -f "$dest" ] && [ "$(sha256_of "$dest")" = "$want" ]; then return 0; fi
  mkdir -p "$(dirname "$dest")"
  curl -fsSL --retry 3 -o "$dest.part" "$url" || { rm -f "$dest.part"; return 1; }
  local got
  got=$(sha256_of "$dest.part")
  [ "$got" = "$want" ] || { rm -f "$dest.part"; die "$url: SHA256 $got, expected $want"; }
  mv "$dest.part" "$dest"
}

# Prints "version filename sha256" of the current $package in sid, read from
# the index that sid's InRelease (verified with the Debian archive keys) names.
current_in_sid() {
  command -v gpgv >/dev/null 2>&1 || die "needs gpgv to check sid's index"
  command -v xz >/dev/null 2>&1 || die "needs xz to read sid's index"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg tmp
  [ -f "$keyring" ] || die "needs $keyring (package debian-archive-keyring)"
  tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/InRelease" "$mirror/dists/sid/InRelease" || die "cannot download $mirror/dists/sid/InRelease"
  gpgv --keyring "$keyring" --output "$tmp/Release" "$tmp/InRelease" 2>/dev/null ||
    die "sid's InRelease does not verify against $keyring"
  local sha
  sha=$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$tmp/Release")
  [ -n "$sha" ] || die "sid's Release lists no main/binary-amd64/Packages.xz"
  fetch dists/sid/main/binary-amd64/Packages.xz "$tmp/Packages.xz" "$sha"
  xz -dc "$tmp/Packages.xz" | awk -v p="$package" '
    /^Package: / { on = ($2 == p) } on && /^Version: / { v = $2 } on && /^Filename: / { f = $2 }
    on && /^SHA256: / { s = $2 } /^$/ { if (on && f != "") { print v, f, s; exit } on = 0 }'
  rm -rf "$tmp"
}

# 1. The package.
deb="$cache/$(basename "$pin_file")"
step "$package $pin_version from $mirror"
if ! fetch "$pin_file" "$deb" "$pin_sha256"; then
  read -r cur_version cur_file cur_sha256 < <(current_in_sid) ||
    die "$mirror/$pin_file is gone and sid has no $package; LLVM 23 must come from elsewhere"
  if [ -z "${LLVM_DEB_FOLLOW_SID:-}" ]; then
    die "$mirror/$pin_file is no longer in the archive (sid has moved on).
Sid now has $package $cur_version. Pin it in scripts/llvm.sh:
  pin_version='$cur_version'
  pin_file='$cur_file'
  pin_sha256='$cur_sha256'
or run with LLVM_DEB_FOLLOW_SID=1 to use it this once."
  fi
  step "the pin is stale; using sid's current $package $cur_version (LLVM_DEB_FOLLOW_SID)"
  pin_version=$cur_version pin_file=$cur_file pin_sha256=$cur_sha256
  deb="$cache/$(basename "$pin_file")"
  fetch "$pin_file" "$deb" "$pin_sha256" || die "cannot download $mirror/$pin_file"
fi

# 2. Unpack what the build needs into a fresh directory beside the prefix; it
# replaces the prefix only when complete.
mkdir -p "$(dirname "$prefix")"
stage=$(mktemp -d "$prefix.new.XXXXXX")
trap 'rm -rf "$stage"' EXIT
step "unpacking into $prefix"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$stage" --wildcards \
  "./$llvm_dir/lib/libLLVM*.a" "./$llvm_dir/lib/cmake/llvm/*" \
  './usr/include/llvm-23/*' './usr/include/llvm-c-23/*' "./usr/share/doc/$package/copyright"
mkdir -p "$stage/bin" "$stage/include" "$stage/lib" "$stage/share/doc"
mv "$stage/$llvm_dir/lib/"libLLVM*.a "$stage/lib/"
mv "$stage/$llvm_dir/lib/cmake" "$stage/lib/"
mv "$stage/usr/include/llvm-23/llvm" "$stage/usr/include/llvm-c-23/llvm-c" "$stage/include/"
mv "$stage/usr/share/doc/$package" "$stage/share/doc/"
rm -rf "$stage/usr"
cmake_dir="$stage/lib/cmake/llvm"

# 3. Read the answers llvm-config would give out of the package's CMake files.
cmake_var() { sed -n "s/^set($1 \"\{0,1\}\([^\")]*\)\"\{0,1\})\$/\1/p" "$cmake_dir/LLVMConfig.cmake" | head -n 1; }
version=$(cmake_var LLVM_PACKAGE_VERSION)
definitions=$(cmake_var LLVM_DEFINITIONS)
[ -n "$version" ] && [ -n "$definitions" ] || die "$cmake_dir/LLVMConfig.cmake lacks LLVM_PACKAGE_VERSION or LLVM_DEFINITIONS"
case "$version" in 23.*) ;; *) die "$package is LLVM $version; cubecl-llvm (llvm-sys 231) needs LLVM 23" ;; esac

# Each exported static library with its link dependencies, one "lib dep" pair
# per line (and "lib lib" so libraries without dependencies are kept); tsort
# turns the pairs into an order where every library precedes what it needs.
# Only the libraries LLVMConfig.cmake lists as available and that are on disk.
available=$(cmake_var LLVM_AVAILABLE_LIBS | tr ';' '\n')
link_pairs() {
  awk '
    /^add_library\(LLVM[A-Za-z0-9_]* STATIC IMPORTED\)/ { sub(/^add_library\(/, ""); sub(/ .*/, ""); static[$0] = 1 }
    /^set_target_properties\(/ { target = $0; sub(/^set_target_properties\(/, "", target); sub(/ .*/, "", target) }
    /^  INTERFACE_LINK_LIBRARIES "/ && (target in static) {
      line = $0; sub(/^[^"]*"/, "", line); sub(/"$/, "", line)
      gsub(/\\\$<LINK_ONLY:/, "", line); gsub(/>/, "", line)
      n = split(line, deps, ";"); for (i = 1; i <= n; i++) print target, deps[i]
    }
    END { for (t in static) print t, t }' "$cmake_dir/LLVMExports.cmake"
}
on_disk=$(cd "$stage/lib" && ls libLLVM*.a | sed 's/^lib//; s/\.a$//')
libs=$(link_pairs | awk -v avail="$available" -v disk="$on_disk" '
  BEGIN { n = split(avail, a, "\n"); for (i = 1; i <= n; i++) listed[a[i]] = 1
          n = split(disk, d, "\n"); for (i = 1; i <= n; i++) if (d[i] in listed) ok[d[i]] = 1 }
  ($1 in ok) && ($2 in ok)' | tsort)
[ -n "$libs" ] || die "no static libraries found through $cmake_dir/LLVMExports.cmake"
grep -qx LLVMNVPTXCodeGen <<<"$libs" || die "$package has no NVPTX target (libLLVMNVPTXCodeGen.a)"

# System libraries: what LLVMSupport links (imported targets mapped to the
# library they stand for), then libxml2 when enabled: llvm-config's rule.
system_libs=$(
  link_pairs | awk '$1 == "LLVMSupport" && $2 !~ /^LLVM/ { print $2 }'
  [ "$(cmake_var LLVM_ENABLE_LIBXML2)" = 1 ] && echo LibXml2::LibXml2
)
system_flags=""
for lib in $system_libs; do
  case "$lib" in
    ZLIB::ZLIB) name=z ;;
    zstd::libzstd_shared | zstd::libzstd_static) name=zstd ;;
    LibXml2::LibXml2) name=xml2 ;;
    /*) name=$(basename "$lib"); name=${name#lib}; name=${name%%.*} ;;
    -l*) name=${lib#-l} ;;
    *::*) die "LLVMSupport links the CMake target $lib, which this script cannot map to a library" ;;
    *) name=$lib ;;
  esac
  system_flags="$system_flags -l$name"
done
system_flags=${system_flags# }

cxxflags="-std=c++17"
[ "$(cmake_var LLVM_ENABLE_EH)" = ON ] || cxxflags="$cxxflags -fno-exceptions"
[ "$(cmake_var LLVM_ENABLE_RTTI)" = ON ] || cxxflags="$cxxflags -fno-rtti"
cxxflags="$cxxflags $definitions"
cflags=$(tr ' ' '\n' <<<"$definitions" | grep -v GLIBCXX | tr '\n' ' ')
cflags=${cflags% }

# 4. The glibc 2.38 names the archives call that this C library lacks.
step "glibc compatibility library"
cat >"$stage/lib/mose_glibc_compat.c" <<'EOF'
/* The C23 strto* entry points of glibc 2.38, for an older glibc.
 *
 * Built by MoSE Lab's scripts/llvm.sh. Debian sid compiles LLVM against glibc
 * 2.38 or later, whose headers route strtol & co. to __isoc23_strtol & co.
 * The C23 functions differ from the old ones in one thing: with base 0 or 2
 * they accept a "0b" or "0B" prefix before binary digits. These parse such a
 * number themselves and leave everything else to the old functions.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* The first binary digit when nptr (past spaces and a sign) is 0b or 0B and a
 * binary digit and base is 0 or 2; NULL otherwise. */
static const char *binary_digits(const char *nptr, int base, int *negative) {
  const char *s = nptr;
  if (base != 0 && base != 2) return NULL;
  while (isspace((unsigned char)*s)) s++;
  *negative = *s == '-';
  if (*s == '+' || *s == '-') s++;
  if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B') && (s[2] == '0' || s[2] == '1')) return s + 2;
  return NULL;
}

/* The magnitude of the binary number at digits; *overflow when it exceeds
 * ULLONG_MAX. errno is left as it was. */
static unsigned long long binary_magnitude(const char *digits, char **endptr, int *overflow) {
  int saved = errno;
  errno = 0;
  unsigned long long v = strtoull(digits, endptr, 2);
  *overflow = errno == ERANGE;
  errno = saved;
  return v;
}

/* A signed result within [min, max] (min == -max - 1), as strtol would give. */
static long long to_signed(unsigned long long magnitude, int negative, int overflow,
                           long long min, long long max) {
  unsigned long long limit = negative ? (unsigned long long)max + 1 : (unsigned long long)max;
  if (overflow || magnitude > limit) {
    errno = ERANGE;
    return negative ? min : max;
  }
  if (negative) return magnitude == limit ? min : -(long long)magnitude;
  return (long long)magnitude;
}

long __isoc23_strtol(const char *nptr, char **endptr, int base) {
  int negative, overflow;
  const char *digits = binary_digits(nptr, base, &negative);
  if (digits == NULL) return strtol(nptr, endptr, base);
  unsigned long long v = binary_magnitude(digits, endptr, &overflow);
  return (long)to_signed(v, negative, overflow, LONG_MIN, LONG_MAX);
}

long long __isoc23_strtoll(const char *nptr, char **endptr, int base) {
  int negative, overflow;
  const char *digits = binary_digits(nptr, base, &negative);
  if (digits == NULL) return strtoll(nptr, endptr, base);
  unsigned long long v = binary_magnitude(digits, endptr, &overflow);
  return to_signed(v, negative, overflow, LLONG_MIN, LLONG_MAX);
}

/* Unsigned: a minus sign negates the value in the unsigned type, as strtoul does. */
unsigned long __isoc23_strtoul(const char *nptr, char **endptr, int base) {
  int negative, overflow;
  const char *digits = binary_digits(nptr, base, &negative);
  if (digits == NULL) return strtoul(nptr, endptr, base);
  unsigned long long v = binary_magnitude(digits, endptr, &overflow);
  if (overflow || v > ULONG_MAX) {
    errno = ERANGE;
    return ULONG_MAX;
  }
  return negative ? -(unsigned long)v : (unsigned long)v;
}

unsigned long long __isoc23_strtoull(const char *nptr, char **endptr, int base) {
  int negative, overflow;
  const char *digits = binary_digits(nptr, base, &negative);
  if (digits == NULL) return strtoull(nptr, endptr, base);
  unsigned long long v = binary_magnitude(digits, endptr, &overflow);
  if (overflow) {
    errno = ERANGE;
    return ULLONG_MAX;
  }
  return negative ? -v : v;
}
EOF
cc -O2 -fPIC -Wall -Wextra -Werror -c "$stage/lib/mose_glibc_compat.c" -o "$stage/lib/mose_glibc_compat.o"
ar rcs "$stage/lib/libmose_glibc_compat.a" "$stage/lib/mose_glibc_compat.o"
rm "$stage/lib/mose_glibc_compat.o"

# 5. bin/llvm-config. Paths are found from the script's own place, so the
# prefix can move; everything else was fixed above.
lib_flags=$(sed 's/^/-l/' <<<"$libs" | tr '\n' ' ')
lib_names=$(sed 's/^\(.*\)$/lib\1.a/' <<<"$libs" | tr '\n' ' ')
cat >"$stage/bin/llvm-config" <<EOF
#!/bin/sh
# Stand-in for Debian's llvm-config (which needs glibc 2.38), written by
# MoSE Lab's scripts/llvm.sh from $package $pin_version's CMake files.
# Only static linking is installed, so --link-static changes nothing.
prefix=\$(cd "\$(dirname "\$0")/.." && pwd)
for arg in "\$@"; do
  case "\$arg" in
    --link-static) ;;
    --version) echo '$version' ;;
    --prefix) echo "\$prefix" ;;
    --libdir) echo "\$prefix/lib" ;;
    --includedir) echo "\$prefix/include" ;;
    --libs) echo '$lib_flags-lmose_glibc_compat' ;;
    --libnames) echo '${lib_names}libmose_glibc_compat.a' ;;
    --system-libs) echo '$system_flags' ;;
    --cxxflags) echo "-I\$prefix/include $cxxflags" ;;
    --cflags) echo "-I\$prefix/include $cflags" ;;
    *) echo "llvm-config (MoSE Lab stand-in): '\$arg' is not answered; see scripts/llvm.sh" >&2; exit 1 ;;
  esac
done
EOF
chmod +x "$stage/bin/llvm-config"

# 6. Every system library must be linkable; install the -dev package of any
# that is not (Debian 12 names below).
missing=()
for flag in $system_flags; do
  name=${flag#-l}
  if ! echo 'int main(void) { return 0; }' | cc -x c - -o /dev/null "$flag" 2>/dev/null; then
    case "$name" in
      z) missing+=(zlib1g-dev) ;; zstd) missing+=(libzstd-dev) ;; xml2) missing+=(libxml2-dev) ;;
      z3) missing+=(libz3-dev) ;; ffi) missing+=(libffi-dev) ;; edit) missing+=(libedit-dev) ;;
      *) die "the linker cannot find $flag and this script does not know its Debian package" ;;
    esac
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]} (LLVM's system libraries)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 7. Prove it: compile against the headers, link the NVPTX target the way
# cubecl-llvm does, and emit PTX for an empty kernel.
step "checking: a program that emits PTX through this LLVM"
cat >"$stage/check.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm/Config/llvm-config.h>

int main(void) {
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
  const char *triple = "nvptx64-nvidia-cuda";
  LLVMContextRef context = LLVMContextCreate();
  LLVMModuleRef module = LLVMModuleCreateWithNameInContext("check", context);
  LLVMSetTarget(module, triple);
  LLVMTypeRef type = LLVMFunctionType(LLVMVoidTypeInContext(context), NULL, 0, 0);
  LLVMValueRef kernel = LLVMAddFunction(module, "check_kernel", type);
  LLVMSetFunctionCallConv(kernel, LLVMPTXKernelCallConv);
  LLVMBuilderRef builder = LLVMCreateBuilderInContext(context);
  LLVMPositionBuilderAtEnd(builder, LLVMAppendBasicBlockInContext(context, kernel, "entry"));
  LLVMBuildRetVoid(builder);
  LLVMTargetRef target;
  char *error = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &error)) { fprintf(stderr, "%s\n", error); return 1; }
  LLVMTargetMachineRef machine = LLVMCreateTargetMachine(target, triple, "sm_80", "",
      LLVMCodeGenLevelDefault, LLVMRelocDefault, LLVMCodeModelDefault);
  LLVMMemoryBufferRef ptx;
  if (LLVMTargetMachineEmitToMemoryBuffer(machine, module, LLVMAssemblyFile, &error, &ptx)) {
    fprintf(stderr, "%s\n", error);
    return 1;
  }
  const char *text = LLVMGetBufferStart(ptx);
  if (strstr(text, ".entry check_kernel") == NULL) { fprintf(stderr, "no kernel in:\n%s\n", text); return 1; }
  printf("LLVM %s emitted %zu bytes of PTX for sm_80\n", LLVM_VERSION_STRING, LLVMGetBufferSize(ptx));
  return 0;
}
EOF
cc -c "-I$stage/include" $cflags "$stage/check.c" -o "$stage/check.o"
# shellcheck disable=SC2086 # the flags are lists of words
c++ "$stage/check.o" -o "$stage/check" "-L$stage/lib" -Wl,--start-group $lib_flags -lmose_glibc_compat -Wl,--end-group \
  $system_flags || die "linking against $package failed (linker output above)"
"$stage/check" || die "the check program failed to emit PTX"
rm -f "$stage/check.c" "$stage/check.o" "$stage/check"

# 8. Into place; the sentinel last, so an interrupted run leaves none.
rm -rf "$prefix"
mv "$stage" "$prefix"
trap - EXIT
echo "$package $pin_version $pin_sha256" >"$stamp"
: >"$sentinel"
step "installed LLVM $version ($package $pin_version) in $prefix"

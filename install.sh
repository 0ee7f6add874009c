#!/bin/sh
# Installs izzi from a release archive (izzi-<version>-<target>.tar.gz), checked against its
# SHA-256, into ${IZZI_INSTALL_DIR:-$HOME/.local/bin}.
#
#   curl -fsSL https://github.com/izziapi/izzi/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --version 0.1.0
#   sh install.sh --archive izzi-0.1.0-x86_64-unknown-linux-gnu.tar.gz
#
# POSIX sh only (checked with `shellcheck -s sh`): it runs wherever `sh` does, dash and busybox
# included. It writes nothing outside its temporary directory and the install directory.

set -eu

RELEASES=${IZZI_INSTALL_URL:-https://github.com/izziapi/izzi/releases}
OTHER_WAYS="Other ways to install izzi: \`npx izziapi\` (Node.js), or \`cargo install --locked --git https://github.com/izziapi/izzi izzi\` (Rust)."

usage() {
	cat <<EOF
Install izzi: one key and one endpoint for every AI coding tool.

usage: install.sh [--version V] [--archive FILE]

  --version V     install version V [default: the latest release]
  --archive FILE  install from a local izzi-<version>-<target>.tar.gz instead of downloading;
                  FILE.sha256 beside it, when present, is checked
  -h, --help      print this help

Environment:
  IZZI_INSTALL_DIR   where to put \`izzi\` [default: \$HOME/.local/bin]
  IZZI_INSTALL_URL   where releases are downloaded from [default: $RELEASES]
  IZZI_INSTALL_OS, IZZI_INSTALL_ARCH, IZZI_INSTALL_LIBC
                     use these instead of \`uname -s\`, \`uname -m\` and the detected C library
                     (gnu or musl) to pick the archive
EOF
}

say() {
	printf '%s\n' "$*"
}

fail() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

usage_error() {
	printf 'error: %s\n' "$*" >&2
	printf '%s\n' "Run \`install.sh --help\` for usage." >&2
	exit 2
}

# gnu when glibc 2.28 or later is here (the release builds target 2.28); otherwise the static
# musl build, which runs on any Linux.
detect_libc() {
	glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || true)
	case $glibc in
	"glibc "*) glibc=${glibc#glibc } ;;
	*)
		echo musl
		return
		;;
	esac
	major=${glibc%%.*}
	minor=${glibc#*.}
	minor=${minor%%.*}
	case "$major.$minor" in
	*[!0-9.]* | .* | *.) echo musl ;;
	*)
		if [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 28 ]; }; then
			echo gnu
		else
			echo musl
		fi
		;;
	esac
}

unsupported() {
	fail "izzi has no prebuilt binary for this platform ($1). $OTHER_WAYS"
}

# The Rust target triple of the archive that runs here.
detect_target() {
	os=${IZZI_INSTALL_OS:-$(uname -s)}
	arch=${IZZI_INSTALL_ARCH:-$(uname -m)}
	case $arch in
	x86_64 | amd64 | x64) cpu=x86_64 ;;
	aarch64 | arm64) cpu=aarch64 ;;
	*) unsupported "$os $arch" ;;
	esac
	case $os in
	Linux | linux)
		libc=${IZZI_INSTALL_LIBC:-$(detect_libc)}
		case $libc in
		gnu | musl) ;;
		*) fail "IZZI_INSTALL_LIBC is \`$libc\`; set it to \`gnu\` or \`musl\`" ;;
		esac
		echo "$cpu-unknown-linux-$libc"
		;;
	Darwin | darwin | macos)
		# A shell under Rosetta reports x86_64 on Apple silicon; the native build is faster.
		if [ -z "${IZZI_INSTALL_ARCH:-}" ] && [ "$cpu" = x86_64 ] &&
			[ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
			cpu=aarch64
		fi
		echo "$cpu-apple-darwin"
		;;
	MINGW* | MSYS* | CYGWIN* | Windows_NT)
		fail "install.sh does not install on Windows ($os $arch): run \`npx izziapi\`, or unpack izzi-<version>-x86_64-pc-windows-msvc.tar.gz from $RELEASES yourself."
		;;
	*) unsupported "$os $arch" ;;
	esac
}

download() {
	if command -v curl >/dev/null 2>&1; then
		curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		fail "neither \`curl\` nor \`wget\` is installed; install one, or download the archive yourself and run \`install.sh --archive FILE\`"
	fi
}

fetch() {
	download "$1" "$2" || fail "could not download $1; check the version and your network, or download it yourself and run \`install.sh --archive FILE\`"
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum <"$1" | awk '{ print $1 }'
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 <"$1" | awk '{ print $1 }'
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 <"$1" | awk '{ print $NF }'
	else
		fail "no \`sha256sum\`, \`shasum\` or \`openssl\` is installed to check the archive's SHA-256; install one of them"
	fi
}

# Refuses the archive unless its SHA-256 is the one its .sha256 file (sha256sum's format) names.
verify() {
	expected=$(awk '{ print tolower($1); exit }' "$2")
	case $expected in
	*[!0-9a-f]*) fail "$2 holds no SHA-256; nothing was installed" ;;
	esac
	[ ${#expected} -eq 64 ] || fail "$2 holds no SHA-256; nothing was installed"
	actual=$(sha256_of "$1")
	if [ "$actual" != "$expected" ]; then
		fail "checksum mismatch for $1: its SHA-256 is $actual but $2 says $expected; the file is damaged or was tampered with, so nothing was installed"
	fi
	say "checked SHA-256 of $(basename "$1")"
}

path_hint() {
	case ":${PATH:-}:" in
	*":$1:"*) return ;;
	esac
	case $(basename "${SHELL:-sh}") in
	zsh) line="echo 'export PATH=\"$1:\$PATH\"' >> ~/.zshrc" ;;
	bash) line="echo 'export PATH=\"$1:\$PATH\"' >> ~/.bashrc" ;;
	fish) line="fish_add_path '$1'" ;;
	*) line="echo 'export PATH=\"$1:\$PATH\"' >> ~/.profile" ;;
	esac
	say ""
	say "$1 is not on your PATH. Add it, then open a new terminal:"
	say "  $line"
}

main() {
	version=""
	archive=""
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		--version)
			[ $# -ge 2 ] || usage_error "\`--version\` needs a version, such as 0.1.0"
			version=$2
			shift 2
			;;
		--version=*)
			version=${1#--version=}
			shift
			;;
		--archive)
			[ $# -ge 2 ] || usage_error "\`--archive\` needs a file"
			archive=$2
			shift 2
			;;
		--archive=*)
			archive=${1#--archive=}
			shift
			;;
		*) usage_error "unknown argument \`$1\`" ;;
		esac
	done
	if [ -n "$archive" ] && [ -n "$version" ]; then
		usage_error "give \`--archive\` or \`--version\`, not both: the archive has its own version"
	fi

	if [ -n "${IZZI_INSTALL_DIR:-}" ]; then
		dir=$IZZI_INSTALL_DIR
	elif [ -n "${HOME:-}" ]; then
		dir=$HOME/.local/bin
	else
		fail "HOME is not set; set IZZI_INSTALL_DIR to the directory to install izzi into"
	fi

	staged=""
	tmp=$(mktemp -d 2>/dev/null || mktemp -d -t izzi-install)
	trap 'rm -rf "$tmp" ${staged:+"$staged"}' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	if [ -n "$archive" ]; then
		[ -f "$archive" ] || fail "no archive at $archive"
		if [ -f "$archive.sha256" ]; then
			verify "$archive" "$archive.sha256"
		else
			say "note: no $archive.sha256 beside the archive, so its checksum was not checked"
		fi
	else
		target=$(detect_target)
		if [ -z "$version" ]; then
			fetch "$RELEASES/latest/download/version.txt" "$tmp/version.txt"
			version=$(awk 'NF { print $1; exit }' "$tmp/version.txt")
		fi
		version=${version#v}
		case $version in
		"" | *[!0-9A-Za-z.+-]*) fail "\`$version\` is not a version such as 0.1.0" ;;
		esac
		name=izzi-$version-$target.tar.gz
		say "downloading $name"
		archive=$tmp/$name
		fetch "$RELEASES/download/v$version/$name" "$archive"
		fetch "$RELEASES/download/v$version/$name.sha256" "$archive.sha256"
		verify "$archive" "$archive.sha256"
	fi

	mkdir "$tmp/unpacked"
	tar -xzf "$archive" -C "$tmp/unpacked" || fail "could not unpack $archive; is it an izzi .tar.gz?"
	binary=""
	for candidate in "$tmp/unpacked/izzi" "$tmp/unpacked"/*/izzi; do
		if [ -f "$candidate" ]; then
			binary=$candidate
			break
		fi
	done
	[ -n "$binary" ] || fail "$archive holds no \`izzi\` binary; nothing was installed"

	# Copy beside the destination and run it there before the rename, so a binary that cannot
	# run here (another OS or CPU, a noexec mount) never replaces a working one.
	mkdir -p "$dir" || fail "could not create $dir; set IZZI_INSTALL_DIR to a directory you can write"
	staged=$dir/.izzi.new.$$
	cp "$binary" "$staged" || fail "could not write to $dir; set IZZI_INSTALL_DIR to a directory you can write"
	chmod 755 "$staged"
	if ! installed=$("$staged" --version 2>&1); then
		rm -f "$staged"
		fail "the izzi in $archive does not run on this machine ($installed); nothing was installed"
	fi
	mv -f "$staged" "$dir/izzi"
	say "installed $installed to $dir/izzi"
	path_hint "$dir"
	say ""
	say "Next: run \`izzi setup\` to point your AI coding tools at izzi."
}

main "$@"

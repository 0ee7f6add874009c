'use strict';
// Runs the izzi binary that npm installed for this OS and CPU: one of the optional per-platform
// packages named in platforms.json, each declaring `os`, `cpu` (and `libc`) so that the package
// manager installs only the one that fits. The child gets this process's arguments and stdio; its
// exit code (or the signal that ended it) becomes ours, and SIGINT, SIGTERM and SIGHUP sent to us
// are passed on to it. Nothing here downloads anything: once installed, it works offline.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const platforms = require('./platforms.json');

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const OTHER_WAYS = [
  'Other ways to install izzi:',
  '  curl -fsSL https://github.com/izziapi/izzi/releases/latest/download/install.sh | sh   (Linux, macOS)',
  '  cargo install --locked --git https://github.com/izziapi/izzi izzi',
  'or set IZZI_BINARY to the path of an izzi binary.',
].join('\n');

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

// Which C library this Linux uses: a glibc binary does not start on musl (Alpine).
function linuxLibc() {
  try {
    // The process report is slow when it lists network interfaces, and it needs none of them.
    process.report.excludeNetwork = true;
    return process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
  } catch {
    // Without a process report, musl's dynamic loader gives it away.
    try {
      return fs.readdirSync('/lib').some((name) => name.startsWith('ld-musl-')) ? 'musl' : 'glibc';
    } catch {
      return 'glibc';
    }
  }
}

// The platform packages that can run here, best first. On glibc Linux the static musl build is a
// fallback (it runs there too), for package managers that installed only that one.
function candidates(platform, arch, libc) {
  const fits = Object.entries(platforms).filter(([, p]) => p.os === platform && p.cpu === arch);
  const rank = ([, p]) => (p.libc === undefined || p.libc === libc ? 0 : p.libc === 'musl' ? 1 : 2);
  return fits.filter((entry) => rank(entry) < 2).sort((a, b) => rank(a) - rank(b));
}

function installedBinary(name, platform) {
  let dir;
  try {
    dir = path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
  return path.join(dir, 'bin', platform.os === 'win32' ? 'izzi.exe' : 'izzi');
}

function findBinary() {
  const { platform, arch } = process;
  const libc = platform === 'linux' ? linuxLibc() : undefined;
  const fitting = candidates(platform, arch, libc);
  for (const [name, p] of fitting) {
    const binary = installedBinary(name, p);
    if (binary !== null) return binary;
  }
  const here = [platform, arch, libc].filter(Boolean).join(' ');
  if (fitting.length === 0) {
    fail(`izzi has no prebuilt binary for this platform (${here}).\n${OTHER_WAYS}`);
  }
  fail(
    `the izzi binary for this platform (${here}) is missing: its package \`${fitting[0][0]}\` ` +
      'was not installed, which happens when npm runs with `--omit=optional` (or `--no-optional`) ' +
      'or reuses a lockfile made on another platform; reinstall `izziapi` without that.\n' +
      OTHER_WAYS,
  );
}

function run(args) {
  const override = process.env.IZZI_BINARY;
  const binary = override ? override : findBinary();
  const child = spawn(binary, args, { stdio: 'inherit' });

  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);

  child.on('error', (err) => {
    const from = override ? ' (from `IZZI_BINARY`)' : '';
    fail(`could not run \`${binary}\`${from}: ${err.message}`);
  });
  child.on('exit', (code, signal) => {
    for (const s of FORWARDED_SIGNALS) process.removeListener(s, forward);
    if (signal) {
      // End the same way, so that a shell sees 128+N; the exit code stands in if the signal is
      // one Node cannot raise on itself.
      process.exitCode = 128 + (os.constants.signals[signal] || 0);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code);
  });
}

module.exports = { run, candidates };

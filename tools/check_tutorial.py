#!/usr/bin/env python3
"""Runs the commands of a tutorial written in Markdown and checks that they
print what it says and make the pictures it shows.

The tutorial's conventions:

- A block opened with ```text file=NAME holds a file the reader writes; it is
  written to NAME in the working directory before the commands after it run.
- A ```console block holds commands, each on a line starting with "$ " (a
  trailing backslash continues it), each followed by what it prints (standard
  output and standard error, as a terminal shows them).
- In printed lines, "..." stands for any text, and a line holding only "..."
  for any number of lines. Numbers must be equal, unless an HTML comment
  <!-- tolerance REL ABS --> before the block allows |got - written| <=
  ABS + REL * |written| for the numbers of that block.
- A picture ![...](tutorial/NAME.png) must be made by the commands as NAME in
  the working directory, and look like the one kept beside the tutorial: the
  same size, and nearly all pixels within a few levels.

Usage: check_tutorial.py TUTORIAL.md --clcnn BIN [--work DIR] [--source DIR] [--update] [--show]
--update copies the pictures made into the tutorial's directory; --show prints
what every command printed. Exit status 0 when all agrees, 1 otherwise, 77
(skipped) when the Fashion-MNIST data set is missing.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
FASHION = "/usr/share/datasets/fashion-mnist"


def parse(markdown):
    """The tutorial as steps: ("file", name, text) and ("command", command,
    expected lines, (rel, abs)) in order, and the pictures it shows."""
    steps, pictures = [], []
    lines = markdown.split("\n")
    tolerance = (0.0, 0.0)
    i = 0
    while i < len(lines):
        line = lines[i]
        pictures += re.findall(r"!\[[^\]]*\]\(tutorial/([^)]+\.png)\)", line)
        m = re.match(r"<!-- tolerance (\S+) (\S+) -->", line)
        if m:
            tolerance = (float(m.group(1)), float(m.group(2)))
        if not line.startswith("```"):
            i += 1
            continue
        info = line[3:].strip()
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = lines[i + 1:end]
        m = re.match(r"text file=(\S+)", info)
        if m:
            steps.append(("file", m.group(1), "\n".join(body) + "\n"))
        elif info == "console":
            k = 0
            while k < len(body):
                if not body[k].startswith("$ "):
                    raise SystemExit("tutorial: a console block must start with a command: "
                                     + body[k])
                command = body[k][2:]
                while command.endswith("\\"):
                    k += 1
                    command = command[:-1] + " " + body[k].strip()
                k += 1
                expected = []
                while k < len(body) and not body[k].startswith("$ "):
                    expected.append(body[k])
                    k += 1
                steps.append(("command", command, expected, tolerance))
            tolerance = (0.0, 0.0)
        i = end + 1
    return steps, pictures


def line_pattern(expected):
    """A regular expression for an expected line and the numbers written in it."""
    pattern, numbers = "", []
    for token in re.split(r"(\.\.\.|" + NUMBER + r"|\s+)", expected.strip()):
        if not token:
            continue
        if token == "...":
            pattern += ".*?"
        elif re.fullmatch(NUMBER, token):
            pattern += "(" + NUMBER + ")"
            numbers.append(float(token))
        elif token.isspace():
            pattern += r"\s+"
        else:
            pattern += re.escape(token)
    return re.compile(pattern), numbers


def line_matches(expected, got, tolerance):
    regex, numbers = line_pattern(expected)
    m = regex.fullmatch(got.strip())
    if not m:
        return False
    rel, absolute = tolerance
    for written, text in zip(numbers, m.groups()):
        if abs(float(text) - written) > absolute + rel * abs(written):
            return False
    return True


def output_matches(expected, got, tolerance):
    """Expected lines against the lines printed; a line "..." takes any number of lines."""
    if not expected:
        return not got
    if expected[0].strip() == "...":
        return any(output_matches(expected[1:], got[k:], tolerance) for k in range(len(got) + 1))
    return bool(got) and line_matches(expected[0], got[0], tolerance) and \
        output_matches(expected[1:], got[1:], tolerance)


def read_png(path):
    """Width, height and RGB rows of a PNG of 8-bit RGB or grey (what clcnn writes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(path + ": not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            if depth != 8 or color not in (0, 2):
                raise ValueError(path + ": not 8-bit grey or RGB")
            channels = 3 if color == 2 else 1
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if channels == 3 else bytes(v for v in line for _ in range(3)))
        previous = line
    return width, height, rows


def pictures_agree(made, kept):
    w1, h1, a = read_png(made)
    w2, h2, b = read_png(kept)
    if (w1, h1) != (w2, h2):
        return "is %dx%d, the kept one %dx%d" % (w1, h1, w2, h2)
    differ = sum(1 for r1, r2 in zip(a, b) for x in range(0, len(r1), 3)
                 if max(abs(r1[x + k] - r2[x + k]) for k in range(3)) > 24)
    if differ > 0.02 * w1 * h1:
        return "differs from the kept one in %d of %d pixels" % (differ, w1 * h1)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tutorial")
    parser.add_argument("--clcnn", required=True)
    parser.add_argument("--work", default="tutorial-work")
    parser.add_argument("--source", help="the clcnn sources (default: the tutorial's ../)")
    parser.add_argument("--update", action="store_true")
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")):
        print("skipped: %s is missing (Debian package dataset-fashion-mnist)" % FASHION)
        return 77
    with open(args.tutorial) as f:
        steps, pictures = parse(f.read())
    source = args.source or os.path.dirname(os.path.dirname(os.path.abspath(args.tutorial)))
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    os.symlink(os.path.join(source, "examples"), os.path.join(args.work, "examples"))
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(args.clcnn)) + os.pathsep + env["PATH"]
    failures = 0
    for step in steps:
        if step[0] == "file":
            with open(os.path.join(args.work, step[1]), "w") as f:
                f.write(step[2])
            continue
        _, command, expected, tolerance = step
        run = subprocess.run(["bash", "-c", command], cwd=args.work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        got = run.stdout.rstrip("\n").split("\n") if run.stdout.strip() else []
        if args.show:
            print("$ " + command + "\n" + run.stdout, end="")
        if run.returncode != 0 or not output_matches(expected, got, tolerance):
            failures += 1
            print("tutorial: $ %s\nexited with %d and printed:\n%s\nthe tutorial says:\n%s\n"
                  % (command, run.returncode, run.stdout, "\n".join(expected)))
    directory = os.path.join(os.path.dirname(os.path.abspath(args.tutorial)), "tutorial")
    for name in pictures:
        made, kept = os.path.join(args.work, name), os.path.join(directory, name)
        if not os.path.exists(made):
            failures += 1
            print("tutorial: no command made %s" % name)
        elif args.update:
            os.makedirs(directory, exist_ok=True)
            shutil.copyfile(made, kept)
        else:
            problem = pictures_agree(made, kept) if os.path.exists(kept) else "is not kept"
            if problem:
                failures += 1
                print("tutorial: the picture %s %s" % (name, problem))
    commands = sum(1 for s in steps if s[0] == "command")
    print("tutorial: %d commands, %d pictures, %d failures" % (commands, len(pictures), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

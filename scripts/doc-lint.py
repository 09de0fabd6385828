#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""doc-lint.py SRCROOT - documentation and licence-header lint.

What it enforces:
  a. Every symbol listed in src/**/*.symbols (the exported ABI, see
     symbols-check.sh) has a kernel-doc block somewhere under src/ or
     include/: a '/**' comment whose first line reads 'name() - summary'
     with a non-empty summary, containing a 'Context:' line and a
     'Return:' line ('Return: nothing.' for void functions; 'Returns:' is
     accepted too). An exported variable may instead be documented as
     'name - summary' (no parentheses) when the declaration following the
     block is not a function; it then needs only the summary.
  b. Every static inline function defined in include/hetmem/**/*.h whose
     name does not start with 'hetmem_' or '__' (i.e. the kernel-named API
     inlines such as dma_fence_get) has such a block too.
  c. Every .c file under src/ has at least one 'DOC: Title' block
     explaining what the file is for.
  d. Every source file (*.c *.h *.cc *.cpp *.cxx *.hh *.hpp *.py *.sh *.in,
     meson.build, meson_options.txt, meson.options) outside version-control
     and tool directories (.git, .cache, .venv, __pycache__, ...),
     subprojects/ (third-party code) and build directories (recognised by
     meson-private/, meson-info/, build.ninja, ...) has
     'SPDX-License-Identifier:' within its first 3 lines.

Why: the kernel function names come with the kernel's documentation
habits; an API whose calling context and return convention are written
down next to the code is what makes the dma-fence rules (signalling
paths, locking) usable, and docs/api is generated from these blocks
(gen-api-doc.py, whose parser this script shares). SPDX lines keep the
MIT licensing of every file machine-checkable.

Output: one line per problem ('file:line: name: missing Context:'), then
a summary line. Exit status 1 if there is any problem, 0 otherwise, 2 on
usage errors.
"""

import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_parser():
    # Do not leave a __pycache__ in the source tree.
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location(
        "hetmem_gen_api_doc", os.path.join(HERE, "gen-api-doc.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


kdoc = load_parser()

SPDX_EXTS = (".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".py", ".sh",
             ".in")
SPDX_NAMES = ("meson.build", "meson_options.txt", "meson.options")
BUILD_DIR_MARKERS = ("meson-private", "meson-info", "meson-logs",
                     "build.ninja", "CMakeCache.txt")
SKIP_DIRS = {".git", ".hg", ".svn", ".cache", ".venv", "venv", "__pycache__",
             "node_modules", "subprojects"}
INLINE_WORDS = {"inline", "__inline", "__inline__", "__always_inline"}
NOT_NAMES = {"__attribute__", "__attribute", "__declspec", "_Alignas",
             "alignas", "typeof", "__typeof", "__typeof__", "__extension__"}


def strip_c(text):
    """Blank out comments, string/char literals and preprocessor lines,
    keeping offsets and newlines."""
    out = []
    i, n = 0, len(text)
    bol = True                 # only whitespace seen since the line began
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if c == "#" and bol:
            j = i
            while True:
                k = text.find("\n", j)
                if k < 0:
                    k = n
                    break
                if text[k - 1] == "\\":
                    j = k + 1
                    continue
                break
            out.append(re.sub(r"[^\n]", " ", text[i:k]))
            i = k
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
            continue
        out.append(c)
        if c == "\n":
            bol = True
        elif not c.isspace():
            bol = False
        i += 1
    return "".join(out)


def skip_parens(code, i):
    """code[i] == '('; index just past the matching ')'."""
    depth = 0
    while i < len(code):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def static_inlines(text):
    """[(name, line)] of static inline functions defined in a header."""
    code = strip_c(text)
    found = []
    for m in re.finditer(r"\bstatic\b", code):
        # The declaration specifiers run up to the first '(' that follows
        # an identifier which is the function name.
        i = m.end()
        words = []
        name = None
        while i < len(code):
            w = re.compile(r"\s*([A-Za-z_]\w*|\(|[^\sA-Za-z_(])").match(code, i)
            if not w:
                break
            tok = w.group(1)
            if tok == "(":
                if words and (words[-1] in NOT_NAMES or
                              re.fullmatch(r"[A-Z][A-Z0-9_]*", words[-1])):
                    i = skip_parens(code, w.start(1))
                    words.append("()")
                    continue
                if words and re.fullmatch(r"[A-Za-z_]\w*", words[-1]):
                    name = words[-1]
                    i = skip_parens(code, w.start(1))
                break
            if tok in (";", "{", "=", ",", ")"):
                break
            words.append(tok)
            i = w.end()
        if not name or not any(w in INLINE_WORDS or
                               re.fullmatch(r"[A-Z0-9_]*INLINE[A-Z0-9_]*", w)
                               for w in words):
            continue
        # A definition has a body after the parameter list (attributes and
        # macros in between allowed).
        while True:
            w = re.compile(r"\s*([A-Za-z_]\w*|\S)").match(code, i)
            if not w or not re.fullmatch(r"[A-Za-z_]\w*", w.group(1)):
                break
            i = w.end()
            p = re.compile(r"\s*\(").match(code, i)
            if p:
                i = skip_parens(code, p.end() - 1)
        if w and w.group(1) == "{":
            found.append((name, code.count("\n", 0, m.start()) + 1))
    return found


def is_build_dir(path, names):
    return any(mk in names for mk in BUILD_DIR_MARKERS)


def spdx_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for d in sorted(dirnames):
            if d in SKIP_DIRS:
                continue
            try:
                names = os.listdir(os.path.join(dirpath, d))
            except OSError:
                continue
            if is_build_dir(os.path.join(dirpath, d), names):
                continue
            keep.append(d)
        dirnames[:] = keep
        for fn in sorted(filenames):
            if fn.endswith(SPDX_EXTS) or fn in SPDX_NAMES:
                rel = os.path.normpath(os.path.join(rel_dir, fn))
                yield rel.replace(os.sep, "/")


def check_block(blocks, name, where):
    """Problems with the documentation of one symbol/inline, [] if fine."""
    cands = [b for b in blocks if b.name == name and b.kind == "function"]
    if not cands:
        var = [b for b in blocks if b.name == name and b.kind == "var"]
        for b in var:
            if b.prototype and not re.search(r"\b%s\s*\(" % re.escape(name),
                                             b.prototype):
                if b.summary:
                    return []
                return ["%s:%d: %s: empty summary in kernel-doc block"
                        % (b.path, b.line, name)]
        if var:
            b = var[0]
            return ["%s:%d: %s: kernel-doc header must read '%s() - summary'"
                    % (b.path, b.line, name, name)]
        return ["%s: %s: missing kernel-doc block" % (where, name)]
    best = None
    for b in cands:
        missing = []
        if not b.summary:
            missing.append("empty summary in kernel-doc block")
        if not b.has_section("Context"):
            missing.append("missing Context:")
        if not b.has_section("Return"):
            missing.append("missing Return:")
        if not missing:
            return []
        if best is None or len(missing) < len(best[1]):
            best = (b, missing)
    b, missing = best
    return ["%s:%d: %s: %s" % (b.path, b.line, name, m) for m in missing]


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: doc-lint.py SRCROOT", file=sys.stderr)
        return 2
    root = argv[1]
    if not os.path.isdir(os.path.join(root, "src")):
        print("doc-lint: %s: not a source tree (no src/)" % root,
              file=sys.stderr)
        return 2

    problems = []
    blocks = kdoc.parse_tree(root)

    # a. exported symbols
    symbols = kdoc.read_symbols(root)
    for name in sorted(symbols):
        problems += check_block(blocks, name, symbols[name])

    # b. kernel-API static inlines of the public headers
    inlines = {}
    base = os.path.join(root, "include", "hetmem")
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.endswith(".h"):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for name, line in static_inlines(text):
                if name.startswith(("hetmem_", "__")) or name in symbols:
                    continue
                inlines.setdefault(name, "%s:%d" % (rel, line))
    for name in sorted(inlines):
        problems += check_block(blocks, name, inlines[name])

    # c. a DOC: block in every .c file of src/
    c_files = [p for p in kdoc.source_files(root)
               if p.startswith("src/") and p.endswith(".c")]
    doc_files = {b.path for b in blocks if b.kind == "doc" and b.name}
    for rel in c_files:
        if rel not in doc_files:
            problems.append("%s:1: no 'DOC: Title' block describing the file"
                            % rel)

    # d. SPDX lines
    nspdx = 0
    for rel in spdx_files(root):
        nspdx += 1
        try:
            with open(os.path.join(root, rel), encoding="utf-8",
                      errors="replace") as f:
                head = [f.readline() for _ in range(3)]
        except OSError as e:
            problems.append("%s:1: unreadable: %s" % (rel, e))
            continue
        if not any("SPDX-License-Identifier:" in l for l in head):
            problems.append("%s:1: no SPDX-License-Identifier: in the first "
                            "3 lines" % rel)

    for p in problems:
        print(p)
    print("doc-lint: %s: %d exported symbols, %d kernel-API inlines, "
          "%d .c files, %d files checked for SPDX"
          % ("%d problem%s" % (len(problems), "" if len(problems) == 1
                               else "s") if problems else "OK",
             len(symbols), len(inlines), len(c_files), nspdx))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The package's import graph: no module of panininet imports itself back through others (no import circle).

Every import statement counts, also those inside functions (a lazy import that closes a loop is still a loop).
"""
import ast
import os
import os.path as osp

from helpers import REPO_ROOT

PACKAGE = osp.join(REPO_ROOT, 'panininet')


def import_graph():
    """{module: set of panininet modules it imports}, from the source of every file under panininet/."""
    files = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith('.py') and name != 'version.py':
                mod = osp.relpath(osp.join(folder, name), REPO_ROOT)[:-3].replace(os.sep, '.')
                files[mod.removesuffix('.__init__')] = osp.join(folder, name)
    graph = {}
    for mod, path in files.items():
        package = mod if path.endswith('__init__.py') else mod.rpartition('.')[0]
        out = set()
        for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parent = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                    base = f'{parent}.{base}' if base else parent
                out.update(f'{base}.{a.name}' if f'{base}.{a.name}' in files else base for a in node.names)
        graph[mod] = {m for m in out if m in files and m != mod}
    return graph


def circles(graph):
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while not group or v not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert 'panininet.weights.checkpoint' in graph['panininet.weights.official']
    assert 'panininet.families.panini_family' in graph['panininet.pipeline.video']  # a lazy-free edge
    assert circles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [['a', 'b']]


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_the_reader_and_the_fast_ops_are_leaves():
    graph = import_graph()
    assert graph['panininet.weights.checkpoint'] == set()
    assert graph['panininet.platform.native_ops'] == set()

"""README.md and docs/: every relative link resolves, every option and -v name they give exists.

Commands in code blocks are checked against what they run: ``inference_panini.py`` against its argparse parser and
the family registry, ``scripts/``, ``benchmarks/`` and ``docs/`` scripts against the options their source declares,
``panininet/train.py`` against basicsr's option parser. Options and ``-v`` names in inline code are checked the same
way, and the CLI's page must name every option the CLI has.
"""
import glob
import os.path as osp
import re
import shlex

import pytest
from helpers import REPO_ROOT, load_script

from panininet.families import family_names

PAGES = sorted([osp.join(REPO_ROOT, 'README.md'), osp.join(REPO_ROOT, 'inputs', 'README.md'),
                *glob.glob(osp.join(REPO_ROOT, 'docs', '*.md'))])
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```[^\n]*\n(.*?)^```', re.M | re.S)
INLINE = re.compile(r'`([^`\n]+)`')
OPTION = re.compile(r'(?<![\w-])(--?[A-Za-z][\w-]*)')
# options of other tools that the pages name (pip)
EXTERNAL = {'--no-build-isolation'}
# pages that other branches are writing, linked from README.md before they land; each is checked like any other
# page once it exists. Empty this set when they have all been merged.
PENDING = set()  # pages linked before they exist (none now)


def rel(path):
    return osp.relpath(path, REPO_ROOT)


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(path):
    text = FENCE.sub('', open(path, encoding='utf-8').read())
    return {slug(m.group(1)) for m in re.finditer(r'^#{1,6} (.+)$', text, re.M)}


def links(path):
    text = FENCE.sub('', open(path, encoding='utf-8').read())
    return [m.group(1) for m in LINK.finditer(text) if not re.match(r'[a-z]+:', m.group(1))]


@pytest.mark.parametrize('page', PAGES, ids=rel)
def test_relative_links_resolve(page):
    broken = []
    for link in links(page):
        target, _, anchor = link.partition('#')
        path = osp.normpath(osp.join(osp.dirname(page), target)) if target else page
        if not osp.exists(path):
            if rel(path) not in PENDING:
                broken.append(f'{link}: no {rel(path)}')
        elif anchor and path.endswith('.md') and anchor not in anchors(path):
            broken.append(f'{link}: no heading #{anchor} in {rel(path)}')
    assert not broken


@pytest.fixture(scope='module')
def cli_options():
    parser = load_script('inference_panini.py').build_parser()
    return {s for a in parser._actions for s in a.option_strings}


def declared_options(script):
    """Option strings a script declares (quoted in its source or in a sibling module it imports), or basicsr's
    for panininet/train.py."""
    if script == 'panininet/train.py':
        import basicsr.utils.options as opts
        return set(re.findall(r'''['"](--?[A-Za-z][\w-]*)['"]''', open(opts.__file__, encoding='utf-8').read()))
    path = osp.join(REPO_ROOT, script)
    files = [path, path[:-3] + '.py'] if script.endswith('.sh') else [path]
    source = ''
    for file in files:
        if osp.isfile(file):
            text = open(file, encoding='utf-8').read()
            siblings = re.findall(r'^(?:from|import) (\w+)', text, re.M)
            source += text + ''.join(open(osp.join(osp.dirname(file), f'{m}.py'), encoding='utf-8').read()
                                     for m in siblings if osp.isfile(osp.join(osp.dirname(file), f'{m}.py')))
    return set(re.findall(r'''['"](--?[A-Za-z][\w-]*)['"]''', source)) | {'-h', '--help'}


def commands(page):
    """(script, tokens after it) of every command line in the page's code blocks that runs one of our files:
    ``python FILE ...``, ``torchrun ... FILE ...`` or ``FILE.sh ...``."""
    out = []
    for block in FENCE.findall(open(page, encoding='utf-8').read()):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'(^|\s)#.*$', '', line).replace('[', ' ').replace(']', ' ')
            try:
                tokens = shlex.split(line)
            except ValueError:
                continue
            if not tokens:
                continue
            if tokens[0] in ('python', 'python3') and len(tokens) > 1:
                script = tokens[1]
            elif tokens[0] == 'torchrun':
                script = next((t for t in tokens if t.endswith('.py')), '')
            else:
                script = tokens[0] if tokens[0].endswith('.sh') else ''
            if re.fullmatch(r'([\w.-]+/)*[\w.-]+\.(py|sh)', script):
                out.append((script, tokens[tokens.index(script) + 1:]))
    return out


@pytest.mark.parametrize('page', PAGES, ids=rel)
def test_commands_use_options_that_exist(page, cli_options):
    names = set(family_names())
    wrong = []
    for script, tokens in commands(page):
        if not osp.exists(osp.join(REPO_ROOT, script)):
            wrong.append(f'{script}: no such file')
            continue
        known = cli_options if script == 'inference_panini.py' else declared_options(script)
        for i, token in enumerate(tokens):
            option = token.split('=')[0]
            if OPTION.fullmatch(option) and not re.fullmatch(r'-\d.*', option) and option not in known:
                wrong.append(f'{script} {option}')
            if script == 'inference_panini.py' and token in ('-v', '--version') and tokens[i + 1] not in names:
                wrong.append(f'{script} -v {tokens[i + 1]}')
    assert not wrong


@pytest.mark.parametrize('page', PAGES, ids=rel)
def test_inline_options_and_versions_exist(page, cli_options):
    every = set(cli_options)
    for script in glob.glob(osp.join(REPO_ROOT, 'scripts', '*.py')) + glob.glob(osp.join(REPO_ROOT, 'benchmarks', '*')):
        every |= declared_options(rel(script))
    every |= declared_options('panininet/train.py') | declared_options('panininet/web/server.py') | EXTERNAL
    text = FENCE.sub('', open(page, encoding='utf-8').read())
    wrong = []
    for span in INLINE.findall(text):
        for m in re.finditer(r'(?:^|\s)-v\s+([\w.]+)', span):
            if m.group(1) not in family_names():
                wrong.append(f'-v {m.group(1)}')
        wrong += [o for o in OPTION.findall(span) if o.startswith('--') and o.split('=')[0] not in every]
    assert not wrong


def test_the_cli_page_names_every_option_and_version(cli_options):
    text = open(osp.join(REPO_ROOT, 'docs', 'inference.md'), encoding='utf-8').read()
    named = set(OPTION.findall(text))
    assert not {o for o in cli_options if o.startswith('--') and o not in ('--help', '--input', '--output',
                                                                          '--version', '--weight', '--upscale')} - named
    readme = open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8').read()
    assert all(f'`{name}`' in text and f'`{name}`' in readme for name in family_names())


def test_checks_can_fail(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('[a](missing.md) [b](#nowhere)\n# Title\n```bash\npython inference_panini.py --no_such_flag\n```\n')
    assert links(str(page)) == ['missing.md', '#nowhere'] and anchors(str(page)) == {'title'}
    assert commands(str(page)) == [('inference_panini.py', ['--no_such_flag'])]
    assert slug('GFP-GAN 1.3.8') == 'gfp-gan-138'
    assert slug('Table 4 and Fig. 7: inside DAFI') == 'table-4-and-fig-7-inside-dafi'

"""The docs pipeline (tools/build_docs.py, `make docs` / `make readme`).

Builds `_docs/` once (executing every notebook: a few minutes), then opens `index.html` and every page in
headless Chromium and checks what a reader sees. Without a `chromium` binary the browser checks skip locally
and FAIL when the environment variable `CI` is set (CI must `apt-get install -y chromium`).
"""
import importlib.util, json, os, re, shutil, struct, subprocess, sys, tempfile, zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
DOCS = ROOT / '_docs'
SCRIPT = ROOT / 'tools' / 'build_docs.py'

_spec = importlib.util.spec_from_file_location('build_docs', SCRIPT)
bd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bd)

NOTEBOOKS = bd.list_notebooks(NBS)
CHROME = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--no-first-run', '--hide-scrollbars']


def _need_chrome():
    if CHROME: return
    msg = 'chromium is not installed (Debian: apt-get install -y chromium)'
    if os.environ.get('CI'): pytest.fail(f'{msg}; CI must install it')
    pytest.skip(msg)


def _chrome(*args, timeout=120):
    with tempfile.TemporaryDirectory() as prof:
        r = subprocess.run([CHROME, *CHROME_FLAGS, f'--user-data-dir={prof}', *args],
                           capture_output=True, text=True, timeout=timeout)
    return r


# ------------------------------------------------------------------ fast unit tests of the pipeline's pieces
def test_page_names_follow_nbdev():
    from nbdev.config import nbpath2html
    for nb in NOTEBOOKS: assert bd.page_name(nb) == nbpath2html(nb).name
    assert bd.page_name(Path('00_core.ipynb')) == 'core.html' and bd.page_name(Path('index.ipynb')) == 'index.html'
    assert NOTEBOOKS[0].name == 'index.ipynb' and NOTEBOOKS[1:] == sorted(NOTEBOOKS[1:])


def test_quarto_options_and_progress_cleanup():
    opts, src = bd.split_quarto_opts('#| echo: false\n#| output: asis\nshow_doc(f)')
    assert opts == {'echo': 'false', 'output': 'asis'} and src == 'show_doc(f)'
    assert bd.collapse_cr('epoch 0\r\x1b[1mepoch 1\x1b[0m\rdone\nnext') == 'done\nnext'
    outs = [{'output_type': 'display_data', 'data': {'text/html': '<div><progress value="1"></progress> 50%</div>'}},
            {'output_type': 'display_data', 'data': {'text/html': '<div><progress value="2"></progress></div><table><tr><td>0.1</td></tr></table>'}},
            {'output_type': 'stream', 'name': 'stdout', 'text': 'a\rb\n'}, {'output_type': 'stream', 'name': 'stdout', 'text': 'c\n'}]
    res = bd.clean_outputs(outs)
    assert len(res) == 2 and '<progress' not in res[0]['data']['text/html'] and '0.1' in res[0]['data']['text/html']
    assert res[1]['text'] == 'b\nc\n'


def test_showdoc_markdown_and_tables():
    md = '---\n\n[source](https://x/y.py#L3){target="_blank" style="float:right; font-size:smaller"}\n\n### Foo.bar\n\n```python\ndef bar(x)\n```\n\n*Doc*'
    name, url, clean = bd.showdoc_markdown(md)
    assert (name, url) == ('Foo.bar', 'https://x/y.py#L3') and clean.startswith('### Foo.bar') and '{target' not in clean
    assert bd.sym_anchor('Foo.bar') == 'foo.bar'
    t = bd.html_table_to_md('<style>x</style><table class="dataframe"><thead><tr><th></th><th>a|b</th></tr></thead>'
                            '<tbody><tr><th>0</th><td>1</td></tr></tbody></table>')
    assert t.splitlines() == ['|  | a\\|b |', '|---|---|', '| 0 | 1 |']


def test_failing_cell_fails_the_build(tmp_path):
    "A notebook whose cell raises makes the build exit non-zero, naming the notebook and the cell"
    import nbformat
    shutil.copy(ROOT / 'pyproject.toml', tmp_path / 'pyproject.toml')
    (tmp_path / 'nbs').mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_raw_cell('---\ntitle: bad\n---'),
                                         nbformat.v4.new_code_cell('x = 1'), nbformat.v4.new_code_cell('1/0')])
    nbformat.write(nb, tmp_path / 'nbs' / '00_bad.ipynb')
    r = subprocess.run([sys.executable, str(SCRIPT), '--nbs', str(tmp_path / 'nbs'), '--out', str(tmp_path / '_docs')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert '00_bad.ipynb' in r.stderr and 'cell #2' in r.stderr and 'ZeroDivisionError' in r.stderr
    assert not (tmp_path / '_docs' / 'bad.html').exists()


# ------------------------------------------------------------------ the real build
@pytest.fixture(scope='module')
def docs():
    "Build `_docs/` once with the command `make docs` runs"
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}'
    return {m['notebook']: m for m in json.loads((DOCS / 'pages.json').read_text())}


def _visible_code(nb: Path) -> str:
    "Source of the cells a reader sees run (not hidden, not exported definitions, not `eval: false`)"
    import nbformat
    src = []
    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type != 'code': continue
        d = dict(re.findall(r'^\s*#\|\s*([\w-]+):?\s*(.*?)\s*$', c.source, re.M))
        if {'hide', 'export', 'exporti', 'exports'} & set(d) or d.get('eval') == 'false': continue
        src.append(c.source)
    return '\n'.join(src)


def _expects_api(nb: Path) -> bool:
    "Does the notebook document symbols (show_doc calls or exported definitions)?"
    import nbformat
    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type != 'code': continue
        if re.search(r'^\s*show_doc\(', c.source, re.M): return True
        if re.search(r'^\s*#\|\s*exports?\s*$', c.source, re.M) and re.search(r'^(?:async def|def|class)\s', c.source, re.M):
            return True
    return False


_re_plot = re.compile(r'\bplt\.\w+\(|\.plot\w*\(|\bplot_\w+\(|\.show_results\(|\.hist\(')


def test_every_notebook_has_a_page(docs):
    assert sorted(docs) == sorted(p.name for p in NOTEBOOKS)
    for nb in NOTEBOOKS: assert (DOCS / bd.page_name(nb)).stat().st_size > 1000


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_documented_symbol_has_one_api_block(docs, nb):
    "Every explicit `show_doc(X)` of the notebook renders, and no symbol is documented twice on its page"
    import nbformat
    shown = {m for c in nbformat.read(nb, as_version=4).cells if c.cell_type == 'code'
             for m in re.findall(r'^\s*show_doc\(([\w.]+)', c.source, re.M)}
    page = (DOCS / bd.page_name(nb)).read_text()
    blocks = re.findall(r'<div class="%s"[^>]*>.*?<h[1-6][^>]*>(.*?)</h[1-6]>' % bd.API_CLASS, page, re.S)
    names = [re.sub(r'<[^>]+>', '', b).replace('¶', '').strip() for b in blocks]
    assert len(names) == len(set(names)), f'documented twice: {sorted(n for n in set(names) if names.count(n) > 1)}'
    assert shown <= set(names), f'show_doc without an API block: {sorted(shown - set(names))}'


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_page_in_chromium(docs, nb):
    "Each page loads in headless Chromium with its title, a nav link to every page, its API section and plots"
    _need_chrome()
    page = DOCS / bd.page_name(nb)
    r = _chrome('--dump-dom', page.as_uri())
    dom = r.stdout
    assert r.returncode == 0 and '</html>' in dom, f'chromium failed on {page.name}: {r.stderr[-2000:]}'
    title = bd.page_title(nb, bd.read_frontmatter(nb))
    import html as _html
    assert re.search(r'<title>[^<]*' + re.escape(_html.escape(title, quote=False)), dom), f'{page.name}: no <title> {title!r}'
    assert re.search(r'<h1 class="title">\s*' + re.escape(_html.escape(title, quote=False)), dom)
    nav = re.search(r'<nav[^>]*class="docs-nav"[^>]*>.*?</nav>', dom, re.S)
    assert nav, f'{page.name}: no nav bar'
    for other in NOTEBOOKS: assert f'href="{bd.page_name(other)}"' in nav.group(0), f'{page.name}: nav lacks {other.name}'
    # API section: one <div class="api-doc"> per rendered show_doc, holding the symbol's heading and signature
    api = [m.start() for m in re.finditer(r'<div[^>]*\bclass="api-doc"', dom)]
    if _expects_api(nb):
        assert len(api) >= 1, f'{page.name}: no rendered show_doc (API) block'
        block = dom[api[0]:][:3000]
        assert re.search(r'<h\d[^>]*>', block) and '<pre' in block, f'{page.name}: API block lacks heading/signature'
    assert '{target=' not in dom, f'{page.name}: pandoc-style link attributes left'
    assert '<span class="n">show_doc</span><span class="p">(' not in dom, f'{page.name}: show_doc source shown'
    n_img = len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom))
    if docs[nb.name]['has_plot'] or _re_plot.search(_visible_code(nb)):
        assert n_img >= 1, f'{page.name}: the notebook draws a plot but the page has no image'
    assert '<progress' not in dom, f'{page.name}: progress bar left in the output'
    assert 'Traceback (most recent call last)' not in dom


def _png_stats(png: bytes):
    "(width, height, number of distinct scanline byte values) of a PNG, with the standard library only"
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    w, h = struct.unpack('>II', png[16:24])
    idat, i = b'', 8
    while i < len(png):
        n, typ = struct.unpack('>I4s', png[i:i + 8])
        if typ == b'IDAT': idat += png[i + 8:i + 8 + n]
        i += 12 + n
    return w, h, len(set(zlib.decompress(idat)))


def test_screenshots(docs):
    "A screenshot of the home page and of one API page is a real, non-blank picture"
    _need_chrome()
    api_nb = next((nb for nb in NOTEBOOKS if docs[nb.name]['api_blocks'] > 0), NOTEBOOKS[0])
    for nb in dict.fromkeys([NOTEBOOKS[0], api_nb]):
        shot = DOCS / f'screenshot-{nb.stem}.png'
        r = _chrome('--window-size=1280,1600', f'--screenshot={shot}', (DOCS / bd.page_name(nb)).as_uri())
        assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
        png = shot.read_bytes()
        w, h, distinct = _png_stats(png)
        assert (w, h) == (1280, 1600) and len(png) > 20_000 and distinct > 20, f'{shot.name} looks blank'


def test_readme_matches_index_notebook():
    "README.md is what `make readme` generates from nbs/index.ipynb (they cannot drift apart)"
    r = subprocess.run([sys.executable, str(SCRIPT), '--check-readme'], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f'README.md is stale: run `make readme`\n{r.stdout[-4000:]}\n{r.stderr[-3000:]}'
    text = (ROOT / 'README.md').read_text()
    fm = bd.read_frontmatter(NBS / 'index.ipynb')
    assert text.splitlines()[2] == f"# {fm['title']}"
    assert '<div' not in text and '{target=' not in text and '#| ' not in text


def test_docs_without_the_docs_tools_say_which_extra_to_install(tmp_path):
    "`make docs` in the environment of the README's first command (no nbdev): one line naming the extra, exit 2 (issue 18.12)"
    blocker = tmp_path / 'sitecustomize.py'   # makes nbdev look uninstalled in the child process
    blocker.write_text("import sys\nsys.modules['nbdev'] = None\n")
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])}
    r = subprocess.run([sys.executable, str(SCRIPT), '--only', 'index'], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'nbdev' in r.stderr and 'pip install -e ".[docs]"' in r.stderr

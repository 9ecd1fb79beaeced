#!/usr/bin/env python
"""Build the documentation site and README.md from the notebooks, without Quarto.

    python tools/build_docs.py                  # execute every nbs/*.ipynb, render _docs/*.html
    python tools/build_docs.py --only 00_core   # render some pages (the nav bar still links all of them)
    python tools/build_docs.py --readme         # regenerate README.md from nbs/index.ipynb only
    python tools/build_docs.py --check-readme   # exit 1 (with a diff) if README.md is out of date

Pipeline, per notebook (each in a fresh process, `--workers` at a time, working directory `nbs/`):
1. nbdev's own doc processors (`nbdev.processors`, the list `FilterDefaults` uses for Quarto): front matter,
   `show_doc` cells added after undocumented exports, `#| hide` / `#| export` cells dropped, `hide_line`,
   `filter_stream`, symbol links. nbdev's `exec_show_docs` (which re-runs only imports and `show_doc` cells
   against saved outputs) is replaced by a fresh execution of every cell with execnb's `CaptureShell`, as
   `nbdev-test` runs them: `#| eval: false` cells and cells flagged with `tst_flags` (`notest`, `slow`) are
   not run, and a failing cell stops the build naming the notebook and cell.
2. The Quarto cell options left in the source are applied: `echo: false` drops the input, `output: false`
   the outputs, `include: false` the cell.
3. Outputs are cleaned: execnb's timing metadata is dropped, fastprogress bars collapse to their final
   state (the results table is kept), `\\r`-updated stream text collapses to its last state, ANSI codes go.
4. `show_doc` output (markdown) becomes an HTML block `<div class="api-doc" id="<symbol>">` (the API
   section of a page) with nbdev's pandoc-style `[source](url){target=...}` link made a plain link.
5. nbconvert's `lab` HTML template (pygments highlighting, plots as base64 PNG) extended with a nav bar
   linking every page, the page title and description from the front-matter raw cell, and `site.css`.

Pages follow nbdev's naming (`nbdev.config.nbpath2html`): `00_core.ipynb` -> `core.html`, `index.ipynb` ->
`index.html`. README.md is rendered by the same steps from `index.ipynb` as GitHub-flavoured markdown.
"""
from __future__ import annotations

import argparse, base64, concurrent.futures as cf, difflib, html, json, multiprocessing as mp, os, re, shutil
import sys, time, traceback
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_IMG_DIR = 'index_files/figure-commonmark'   # where Quarto's commonmark render (nbdev-readme) puts them
API_CLASS = 'api-doc'


# ------------------------------------------------------------------ notebooks and pages
def list_notebooks(nbs: Path) -> list[Path]:
    "Notebooks to render: `index.ipynb` first, then the others in name order (skipping `_*` and `.*`)"
    nbs_ = [p for p in sorted(nbs.glob('*.ipynb')) if not p.name.startswith(('_', '.'))]
    return sorted(nbs_, key=lambda p: (p.name != 'index.ipynb', p.name))


def page_name(nb: Path) -> str:
    "nbdev's html name for a notebook: numeric prefix dropped, lower case"
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.name.lower())[:-len('.ipynb')] + '.html'


def read_frontmatter(nb: Path) -> dict:
    "Front matter of notebook `nb` (its raw `---` cell), without executing anything"
    from fastcore.nbio import read_nb, nb_frontmatter
    try: return dict(nb_frontmatter(read_nb(nb)) or {})
    except Exception: return {}


def page_title(nb: Path, fm: dict) -> str:
    return str(fm.get('title') or nb.stem)


# ------------------------------------------------------------------ execution (runs in a worker process)
class CellError(Exception): pass


def _directives(cell) -> dict:
    return getattr(cell, 'directives_', None) or {}


def _should_run(cell, fm_default: bool, skip_flags: set) -> bool:
    "Does `cell` run in a docs build? Same rules as `nbdev-test`"
    if cell.cell_type != 'code' or not (cell.source or '').strip(): return False
    if 'skip-execution' in cell.get('metadata', {}).get('tags', []): return False
    if 'nbdev_export' + '(' in cell.source: return False
    d = _directives(cell)
    if skip_flags & set(d): return False
    ev = str(d.get('eval', '')).strip().lower() if 'eval' in d else None
    if ev in ('', 'true'): return True
    if ev == 'false': return False
    return fm_default


def _make_exec_proc(nb, nb_path: Path, skip_flags: set, cell_timeout):
    "A nbdev `Processor` that runs every cell of `nb` fresh in one execnb `CaptureShell`"
    from nbdev.process import Processor
    from execnb.shell import CaptureShell, format_exc
    from fastcore.nbio import fm_default_eval
    from fastcore.xtras import str2bool

    class ExecAll(Processor):
        def begin(self):
            fm = getattr(self.nb, 'frontmatter_', {}) or {}
            self.skip_all = str2bool(fm.get('skip_exec', False))
            self.default = fm_default_eval(fm)
            self.k = None if self.skip_all else CaptureShell(nb_path)

        def __call__(self, cell):
            if cell.cell_type != 'code': return
            if self.skip_all or not _should_run(cell, self.default, skip_flags):
                cell.outputs, cell.execution_count = [], None
                return
            self.k.cell(cell, timeout=cell_timeout)
            cell.metadata.pop('execution', None)   # execnb's float timings fail nbformat validation
            for o in cell.outputs:                  # execnb splits text into lines; nbdev's processors want str
                if isinstance(o.get('text'), list): o['text'] = ''.join(o['text'])
                for k, v in (o.get('data') or {}).items():
                    if isinstance(v, list): o['data'][k] = ''.join(v)
            if (e := self.k.exc) is not None:
                no = cell.get('orig_no_', '?')
                tb = ''.join(format_exc(e)) if isinstance(format_exc(e), (list, tuple)) else str(format_exc(e))
                raise CellError(f"{nb_path.name}: cell #{no} (counting from 0, id {cell.get('id', '?')}) raised "
                                f"{type(e).__name__}: {e}\n--- cell source ---\n{cell.source}\n"
                                f"--- traceback ---\n{tb}")

        def end(self):
            if self.k is not None: self.k.close()

    return ExecAll(nb)


def execute_notebook(nb_path: str, cell_timeout: int | None = 600) -> dict:
    "Run the doc processors and a fresh execution on `nb_path`; return the processed notebook as JSON data"
    nb_path = Path(nb_path).resolve()
    os.chdir(nb_path.parent)
    from nbdev.config import get_config
    cfg = get_config(nb_path.parent)
    if str(cfg.config_path) not in sys.path: sys.path.insert(0, str(cfg.config_path))
    import warnings
    warnings.filterwarnings('ignore', message='Found cells containing imports')
    from fastcore.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    import nbdev.processors as P

    skip_flags = cfg.get('tst_flags', '') or ''
    skip_flags = set(skip_flags.split() if isinstance(skip_flags, str) else skip_flags)
    t0 = time.time()
    nb = read_nb(nb_path)
    for i, c in enumerate(nb.cells): c['orig_no_'] = i
    ex = _make_exec_proc(nb, nb_path, skip_flags, cell_timeout)
    # nbdev's FilterDefaults order, with `exec_show_docs` replaced by `ex` (moved before the processors
    # that rewrite or drop source, so that what runs is what the author wrote) and no `insert_warning`.
    procs = [FrontmatterProc, P.populate_language, _add_show_docs(P), P.clean_show_doc, P.ai_magics, ex,
             P.strip_ansi, P.hide_line, P.filter_stream_, P.rm_header_dash, P.rm_export, P.clean_magics,
             P.hide_, P.add_links, P.add_fold, P.mv_exports, P.strip_hidden_metadata]
    try: NBProcessor(nb=nb, procs=procs, rm_directives='quarto').process()
    except CellError as e: return dict(path=str(nb_path), error=str(e))
    except Exception as e: return dict(path=str(nb_path), error=f"{nb_path.name}: {type(e).__name__}: {e}\n{traceback.format_exc()}")
    fm = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
          for k, v in (getattr(nb, 'frontmatter_', {}) or {}).items()}
    cells = []
    for c in nb.cells:
        if c.get('source') is None: continue
        if c.cell_type == 'raw' and c.get('orig_no_') is None: continue   # FrontmatterProc's re-inserted YAML cell
        cells.append(_plain_cell(c))
    return dict(path=str(nb_path), frontmatter=fm, seconds=time.time() - t0,
                nb=dict(cells=cells, metadata=_plain(nb.get('metadata', {})), nbformat=4, nbformat_minor=5))


def _plain(o):
    "AttrDict/L trees as plain JSON data"
    if isinstance(o, dict): return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [_plain(v) for v in o]
    return o


def _plain_cell(c) -> dict:
    keep = ('id', 'cell_type', 'source', 'metadata', 'outputs', 'execution_count', 'attachments')
    d = {k: _plain(c[k]) for k in keep if k in c}
    d.setdefault('metadata', {})
    d['metadata'].pop('execution', None)
    d['metadata']['docs_has_sd'] = bool(c.get('has_sd', False))
    if isinstance(d['source'], list): d['source'] = ''.join(d['source'])
    if d['cell_type'] == 'code':
        d.setdefault('outputs', []); d.setdefault('execution_count', None)
    return d


# ------------------------------------------------------------------ cleaning the executed notebook
_re_quarto_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_re_showdoc_src = re.compile(r'^\s*show_doc\(', re.MULTILINE)


def split_quarto_opts(src: str) -> tuple[dict, str]:
    "Leading `#| key: value` lines of `src` as a dict, and the rest of the source"
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_quarto_opt.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('"\'')
        lines.pop(0)
    while lines and not lines[0].strip(): lines.pop(0)
    return opts, '\n'.join(lines).rstrip()


def collapse_cr(text: str) -> str:
    "Text as a terminal shows it: each `\\r` returns to the start of the line"
    text = _re_ansi.sub('', text)
    out = []
    for line in text.split('\n'):
        if '\r' in line:
            parts = [p for p in line.split('\r') if p != '']
            line = parts[-1] if parts else ''
        out.append(line)
    return '\n'.join(out)


def _txt(v) -> str: return ''.join(v) if isinstance(v, list) else (v or '')


_re_progress = re.compile(r'<progress\b[^>]*>.*?</progress>\s*', re.S)


def clean_progress_html(s: str) -> str:
    "fastprogress's notebook output without its progress bars (the results table stays)"
    if '<progress' not in s: return s
    s = re.sub(r'<style>.*?</style>', '', s, flags=re.S)
    s = re.sub(r'<div>\s*<progress\b.*?</div>', '', s, flags=re.S)
    s = _re_progress.sub('', s)
    return s


def clean_outputs(outputs: list) -> list:
    "Collapse progress displays and `\\r` streams; merge consecutive streams of the same name"
    res = []
    for o in outputs:
        o = dict(o)
        ot = o.get('output_type')
        if ot == 'stream':
            text = collapse_cr(_txt(o.get('text')))
            if res and res[-1].get('output_type') == 'stream' and res[-1].get('name') == o.get('name'):
                res[-1]['text'] = collapse_cr(res[-1]['text'] + text)
                continue
            o['text'] = text
        elif ot in ('display_data', 'execute_result'):
            data = dict(o.get('data', {}))
            if 'text/html' in data:
                h = _txt(data['text/html'])
                if '<progress' in h:
                    h = clean_progress_html(h)
                    # a progress display repeats: the last one (the final state) replaces the earlier ones
                    res = [r for r in res if not r.get('_progress')]
                    o['_progress'] = True
                    if not re.sub(r'<[^>]+>', '', h).strip(): continue
                data['text/html'] = h
            o['data'] = data
        res.append(o)
    for o in res:
        o.pop('_progress', None)
        if o.get('output_type') == 'stream' and not o['text'].strip('\n'): o['text'] = ''
    return [o for o in res if not (o.get('output_type') == 'stream' and not o['text'])]


_re_src_link = re.compile(r'\[source\]\(([^)\s]+)\)\{[^}]*\}')
_re_pandoc_attr = re.compile(r'(\]\([^)\s]+\))\{[^}]*\}')


def _add_show_docs(P):
    "nbdev's `add_show_docs`, counting `show_doc(Class.method)` as documenting a `@patch`ed `method`"
    # nbdev checks a patched function's bare name against the `Class.method` names already shown, so a
    # method documented explicitly was documented a second time
    class add_show_docs(P.add_show_docs):
        def begin(self):
            def_names = P._def_names
            P._def_names = lambda cell, shown: def_names(cell, set(shown) | {n.rsplit('.', 1)[-1] for n in shown})
            try: super().begin()
            finally: P._def_names = def_names
    return add_show_docs


def showdoc_markdown(md: str, for_readme=False) -> tuple[str, str, str]:
    "show_doc's markdown -> (symbol name, source url, clean markdown without the rule and source link)"
    md = md.strip()
    if md.startswith('---'): md = md[3:].lstrip()
    url = ''
    if m := _re_src_link.search(md):
        url = m.group(1)
        md = (md[:m.start()] + md[m.end():]).lstrip()
    md = _re_pandoc_attr.sub(r'\1', md)
    name = ''
    if m := re.match(r'^(#+)\s+(.+?)\s*$', md, re.M): name = m.group(2)
    return name, url, md


def sym_anchor(name: str) -> str:
    "Quarto's heading id for a show_doc heading (what nbdev's `_modidx` links point at)"
    return re.sub(r'[^\w.\-]', '', name.strip('`').lower())


def prepare_cells(nbd: dict) -> list:
    "Apply the Quarto cell options left by nbdev and clean outputs. Returns the cells to render"
    cells = []
    for c in nbd['cells']:
        c = dict(c)
        md = c.setdefault('metadata', {})
        if c['cell_type'] == 'markdown':
            if not c['source'].strip(): continue
            cells.append(c); continue
        if c['cell_type'] == 'raw': continue
        opts, src = split_quarto_opts(c['source'])
        if opts.get('include') == 'false': continue
        c['source'] = src
        md['docs_opts'] = opts
        md['docs_showdoc'] = bool(md.get('docs_has_sd') or _re_showdoc_src.search(src))
        md['docs_echo'] = opts.get('echo', 'true') != 'false' and bool(src.strip())
        c['outputs'] = [] if opts.get('output') == 'false' else clean_outputs(c.get('outputs', []))
        if not md['docs_echo'] and not c['outputs']: continue
        cells.append(c)
    return cells


# ------------------------------------------------------------------ HTML
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
                        processEscapes: true}};
// Loaded after the page, so that the docs render offline (math then stays as TeX source).
window.addEventListener('load', function () {
  if (!document.querySelector('.jp-RenderedMarkdown')) return;
  var s = document.createElement('script'); s.async = true;
  s.src = 'https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml-full.js';
  document.head.appendChild(s);
});
</script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<link rel="stylesheet" href="site.css">
{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook docs-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.docs_nav }}
<main class="docs-main">
<header class="docs-title">
<h1 class="title">{{ resources.docs_title | escape_html }}</h1>
{%- if resources.docs_description %}
<p class="description">{{ resources.docs_description | escape_html }}</p>
{%- endif %}
</header>
{%- endblock body_header -%}
{% block body_footer %}
<footer class="docs-footer">{{ resources.docs_footer }}</footer>
</main>
</body>
{% endblock body_footer %}
"""

SITE_CSS = """
:root { --docs-accent: #2a6db0; --docs-nav-bg: #1f3a56; --docs-width: 980px; }
html, body { background: #fff; }
body.docs-page { margin: 0; padding: 0; font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; font-size: 16px; color: #222; line-height: 1.55; }
body.docs-page .jp-RenderedHTMLCommon { font-family: inherit; font-size: 16px; line-height: 1.6; color: #222;
  padding-right: 0; }
nav.docs-nav { position: sticky; top: 0; z-index: 10; background: var(--docs-nav-bg); box-shadow: 0 1px 3px rgba(0,0,0,.25); }
nav.docs-nav .docs-nav-inner { max-width: var(--docs-width); margin: 0 auto; padding: 0 20px; display: flex;
  flex-wrap: wrap; align-items: center; gap: 4px 18px; min-height: 52px; }
nav.docs-nav a { color: #dfe8f2; text-decoration: none; font-size: 15px; padding: 4px 2px; border-bottom: 2px solid transparent; }
nav.docs-nav a:hover { color: #fff; border-bottom-color: #9cc3ea; }
nav.docs-nav a.brand { color: #fff; font-weight: 700; font-size: 18px; margin-right: 14px; }
nav.docs-nav a.active { color: #fff; border-bottom-color: #fff; }
main.docs-main { max-width: var(--docs-width); margin: 0 auto; padding: 8px 20px 40px 20px; }
header.docs-title { margin: 28px 0 18px 0; padding-bottom: 12px; border-bottom: 1px solid #e3e3e3; }
header.docs-title h1.title { font-size: 2.3em; margin: 0 0 6px 0; font-weight: 600; }
header.docs-title p.description { margin: 0; font-size: 1.2em; font-style: italic; color: #555; }
body.docs-page .jp-Cell { padding: 0; margin: 0 0 12px 0; }
body.docs-page .jp-MarkdownCell .jp-RenderedHTMLCommon h2 { margin-top: 1.6em; padding-bottom: .2em; border-bottom: 1px solid #eee; }
body.docs-page .jp-InputArea-editor { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 6px; }
body.docs-page .jp-InputArea-editor .highlight pre { padding: 10px 12px; font-size: 13.5px; overflow-x: auto; }
body.docs-page .jp-OutputArea-output pre { overflow-x: auto; }
body.docs-page .jp-OutputArea-output pre { font-size: 13.5px; }
body.docs-page .jp-OutputArea { margin-left: 14px; border-left: 2px solid #f2b79b; padding-left: 8px; }
body.docs-page .jp-Cell.celltag_docs-showdoc .jp-OutputArea { margin-left: 0; border-left: none; padding-left: 0; }
body.docs-page .jp-RenderedImage img { max-width: 100%; height: auto; }
div.api-doc { border: 1px solid #d9dee4; border-left: 4px solid var(--docs-accent); border-radius: 6px;
  padding: 6px 16px 10px 16px; margin: 14px 0 18px 0; background: #fbfcfe; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
div.api-doc h1, div.api-doc h2, div.api-doc h3, div.api-doc h4 { margin: 8px 0 6px 0; font-size: 1.2em;
  font-family: "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; color: #123; border: none; }
div.api-doc a.api-source { float: right; font-size: 13px; margin-top: 10px; }
div.api-doc .highlight { background: #f1f4f8; border-radius: 4px; }
body.docs-page pre, body.docs-page code, div.api-doc .highlight pre { font-family: "SFMono-Regular", Menlo, Consolas,
  "DejaVu Sans Mono", "Liberation Mono", monospace; }
div.api-doc .highlight pre { white-space: pre-wrap; padding: 8px 10px; margin: 4px 0; font-size: 13.5px; }
div.api-doc table { font-size: 14px; margin: 6px 0; }
.jp-RenderedHTMLCommon table { border-collapse: collapse; font-size: 14px; }
body.docs-page .jp-RenderedMarkdown td, body.docs-page .jp-RenderedMarkdown th { font-size: 14px; }
body.docs-page .jp-MarkdownOutput pre { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 6px;
  padding: 10px 12px; font-size: 13.5px; overflow-x: auto; margin-bottom: 1em; }
.jp-RenderedHTMLCommon a code { color: var(--docs-accent); }
.jp-RenderedHTMLCommon a { color: var(--docs-accent); }
footer.docs-footer { margin-top: 40px; padding-top: 10px; border-top: 1px solid #eee; color: #888; font-size: 13px; }
"""


def _nav_html(pages: list[tuple[str, str]], current: str, brand: str) -> str:
    cls = ' active' if current == 'index.html' else ''
    links = [f'<a class="brand{cls}" href="index.html" title="home">{html.escape(brand)}</a>']
    for href, title in pages:
        if href == 'index.html': continue   # the brand is the home link
        cls = ' class="active" aria-current="page"' if href == current else ''
        links.append(f'<a href="{href}"{cls}>{html.escape(title)}</a>')
    return '<nav class="docs-nav" aria-label="pages"><div class="docs-nav-inner">' + ''.join(links) + '</div></nav>'


def _fix_links(s: str, cfg_host: str, page_map: dict) -> str:
    "Make links to our own docs relative (so the site works offline) and `.ipynb` links point at pages"
    if cfg_host:
        s = s.replace(cfg_host.rstrip('/') + '/', '')
    s = re.sub(r'href="/([\w\-]+\.html(?:#[^"]*)?)"', r'href="\1"', s)
    def _nb(m):
        name = m.group(1)
        return f'href="{page_map.get(name, name)}{m.group(2) or ""}"'
    return re.sub(r'href="(?:\./)?([\w\-]+\.ipynb)(#[^"]*)?"', _nb, s)


def _ini(cfg, key) -> str:
    ini = Path(cfg.config_path) / 'settings.ini'
    if not ini.exists(): return ''
    import configparser
    cp = configparser.ConfigParser(interpolation=None); cp.read(ini)
    return cp['DEFAULT'].get(key, '')


def git_url(cfg) -> str:
    "The repository URL: nbdev's config (pyproject `[project.urls]`), else settings.ini's `git_url`"
    return (str(cfg.get('git_url', '') or '') or _ini(cfg, 'git_url')).rstrip('/')


def docs_url(cfg) -> str:
    "The hosted docs site: nbdev's `doc_host`+`doc_baseurl`, else settings.ini's"
    host, base = str(cfg.get('doc_host', '') or ''), str(cfg.get('doc_baseurl', '') or '')
    if not host: host, base = _ini(cfg, 'doc_host'), _ini(cfg, 'doc_baseurl')
    return (host.rstrip('/') + '/' + base.strip('/')).rstrip('/') if host else ''


def _source_url(url: str, repo: str) -> str:
    "nbdev's show_doc source link; it is repo-relative (`/blob/...`) when nbdev's config has no git_url"
    if url.startswith('/blob/'): return repo + url if repo else ''
    return url


def render_html(result: dict, pages: list[tuple[str, str]], brand: str, cfg_host: str, page_map: dict,
                repo: str = '') -> str:
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    from jinja2 import DictLoader

    nbd, fm = result['nb'], result['frontmatter']
    nb_path = Path(result['path'])
    cells = prepare_cells(nbd)
    for c in cells:
        if c['cell_type'] != 'code': continue
        md = c['metadata']
        tags = set(md.get('tags', []))
        if not md['docs_echo']: tags.add('docs-remove-input')
        if md['docs_showdoc']:
            tags.add('docs-showdoc')
            for o in c['outputs']:
                data = o.get('data', {})
                if 'text/markdown' not in data: continue
                name, url, sdmd = showdoc_markdown(_txt(data['text/markdown']))
                url = _source_url(url, repo)
                src = f'<a class="api-source" href="{html.escape(url)}" target="_blank">source</a>' if url else ''
                body = markdown2html_mistune(sdmd)
                anchor = sym_anchor(name)   # nbdev's `_modidx` links point at Quarto's lower-case heading ids
                ida = f' id="{html.escape(anchor)}"' if anchor and f'id="{anchor}"' not in body else ''
                o['data'] = {'text/html': f'<div class="{API_CLASS}"{ida}>{src}{body}</div>'}
                o['metadata'] = {}
        md['tags'] = sorted(tags)
    nb = nbformat.from_dict(dict(nbd, cells=cells))
    for c in nb.cells:
        for k in [k for k in c.metadata if k.startswith('docs_')]: del c.metadata[k]
    nb.metadata['title'] = f"{page_title(nb_path, fm)} – {brand}" if nb_path.name != 'index.ipynb' else page_title(nb_path, fm)

    exp = HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'docs.html.j2': _TEMPLATE})],
                       template_file='docs.html.j2', exclude_input_prompt=True, exclude_output_prompt=True,
                       anchor_link_text='¶')
    trp = TagRemovePreprocessor(remove_input_tags={'docs-remove-input'}, enabled=True)
    exp.register_preprocessor(trp, enabled=True)
    resources = dict(docs_nav=_nav_html(pages, page_name(nb_path), brand), docs_title=page_title(nb_path, fm),
                     docs_description=str(fm.get('description', '') or ''),
                     docs_footer=f'Generated from <code>nbs/{html.escape(nb_path.name)}</code> by <code>tools/build_docs.py</code>.')
    body, _ = exp.from_notebook_node(nb, resources=resources)
    return _fix_links(body, cfg_host, page_map)


# ------------------------------------------------------------------ README (GitHub-flavoured markdown)
class _TableParser(HTMLParser):
    def __init__(self):
        super().__init__(); self.rows, self.row, self.cell, self.in_cell, self.span = [], None, [], False, False
        self.head_rows = 0; self.in_head = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ('th', 'td') and (a.get('colspan', '1') != '1' or a.get('rowspan', '1') != '1'): self.span = True
        if tag == 'thead': self.in_head = True
        elif tag == 'tr': self.row = []
        elif tag in ('th', 'td'): self.in_cell, self.cell = True, []
    def handle_endtag(self, tag):
        if tag == 'thead': self.in_head = False
        elif tag in ('th', 'td') and self.row is not None:
            self.row.append(' '.join(''.join(self.cell).split())); self.in_cell = False
        elif tag == 'tr' and self.row is not None:
            self.rows.append(self.row)
            if self.in_head: self.head_rows += 1
            self.row = None
    def handle_data(self, data):
        if self.in_cell: self.cell.append(data)


def html_table_to_md(s: str) -> str | None:
    "A pandas DataFrame's HTML as a GFM pipe table (None when it does not fit one)"
    if '<table' not in s: return None
    s = re.sub(r'<style.*?</style>', '', s, flags=re.S)
    p = _TableParser(); p.feed(s)
    if p.span or not p.rows: return None
    n = max(len(r) for r in p.rows)
    rows = [r + [''] * (n - len(r)) for r in p.rows]
    nh = max(p.head_rows, 1)
    head = [' '.join(x for x in col if x) for col in zip(*rows[:nh])]
    esc = lambda x: x.replace('|', '\\|')
    lines = ['| ' + ' | '.join(map(esc, head)) + ' |', '|' + '|'.join(['---'] * n) + '|']
    lines += ['| ' + ' | '.join(map(esc, r)) + ' |' for r in rows[nh:]]
    extra = re.sub(r'<[^>]+>', ' ', s[s.rfind('</table>') + 8:]).strip()   # e.g. "5 rows × 3 columns"
    return '\n'.join(lines) + (f'\n\n{" ".join(extra.split())}' if extra else '')


def _fence(text: str, lang: str = '') -> str:
    ticks = '```'
    while ticks in text: ticks += '`'
    return f'{ticks}{lang}\n{text.rstrip()}\n{ticks}'


def _readme_links(md: str, site: str, nbs_dir: Path) -> str:
    "Links in README markdown that work in any clone: doc pages -> their source notebooks in nbs/"
    notebooks = {page_name(nb): nb.name for nb in list_notebooks(nbs_dir)}
    def page_link(m):
        nb = notebooks.get(m.group(1))
        return f'](nbs/{nb})' if nb else m.group(0)
    md = re.sub(r'\]\(/?([\w\-]+\.html)(?:#[^)\s]*)?\)', page_link, md)
    return re.sub(r'\]\((?:\./)?([\w\-]+\.ipynb)\)',
                  lambda m: f'](nbs/{m.group(1)})' if (nbs_dir / m.group(1)).exists() else m.group(0), md)


def render_readme(result: dict, site: str = '') -> tuple[str, dict[str, bytes]]:
    "README.md text and its images {relative path: png bytes} from the executed index notebook"
    nbd, fm = result['nb'], result['frontmatter']
    nbs_dir = Path(result['path']).parent
    parts, images = [], {}
    parts.append('<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM nbs/index.ipynb BY tools/build_docs.py! DO NOT EDIT! -->')
    parts.append(f"# {fm.get('title') or 'README'}")
    if fm.get('description'): parts.append(f"> {' '.join(str(fm['description']).split())}")
    for ci, c in enumerate(prepare_cells(nbd)):
        if c['cell_type'] == 'markdown':
            parts.append(_readme_links(c['source'].strip(), site, nbs_dir)); continue
        md = c['metadata']
        if md['docs_echo'] and not md['docs_showdoc']: parts.append(_fence(c['source'], 'python'))
        for oi, o in enumerate(c['outputs']):
            ot = o.get('output_type')
            if ot == 'stream':
                if o.get('name') == 'stdout' and o['text'].strip():
                    parts.append(_fence('\n'.join(l.rstrip() for l in o['text'].splitlines())))
                continue
            if ot == 'error': continue
            data = o.get('data', {})
            if 'text/markdown' in data:
                mdtxt = _txt(data['text/markdown'])
                if md['docs_showdoc']: mdtxt = showdoc_markdown(mdtxt, for_readme=True)[2]
                else: mdtxt = _re_pandoc_attr.sub(r'\1', mdtxt)
                parts.append(_readme_links(mdtxt.strip(), site, nbs_dir))
            elif 'image/png' in data:
                rel = f'{README_IMG_DIR}/cell-{ci}-output-{oi}.png'
                images[rel] = base64.b64decode(_txt(data['image/png']))
                parts.append(f'![]({rel})')
            elif 'text/html' in data and (t := html_table_to_md(_txt(data['text/html']))):
                parts.append(t)
            elif 'text/plain' in data:
                parts.append(_fence(_txt(data['text/plain'])))
    text = '\n\n'.join(p for p in parts if p.strip()) + '\n'
    return re.sub(r'\n{3,}', '\n\n', text), images


# ------------------------------------------------------------------ driver
def run_all(nbs: list[Path], workers: int, cell_timeout) -> list[dict]:
    "Execute notebooks, each in a fresh process, in the order given; results in the same order"
    os.environ.setdefault('PYTHONHASHSEED', '0')
    ctx = mp.get_context('spawn')
    results = {}
    with cf.ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx, max_tasks_per_child=1) as pool:
        futs = {pool.submit(execute_notebook, str(p), cell_timeout): p for p in nbs}
        for f in cf.as_completed(futs):
            p = futs[f]
            try: r = f.result()
            except Exception as e: r = dict(path=str(p), error=f'{p.name}: worker died: {type(e).__name__}: {e}')
            results[p] = r
            status = 'FAILED' if 'error' in r else f"{r['seconds']:.1f}s"
            print(f'  executed {p.name}: {status}', flush=True)
    return [results[p] for p in nbs]


def _fail(results: list[dict]) -> bool:
    bad = [r for r in results if 'error' in r]
    for r in bad: print(f"\nERROR executing notebook {Path(r['path']).name}:\n{r['error']}", file=sys.stderr)
    return bool(bad)


def build_docs(nbs_dir: Path, out: Path, only: list[str] | None, workers: int, cell_timeout) -> int:
    from nbdev.config import get_config
    cfg = get_config(nbs_dir)
    brand = str(cfg.get('title') or cfg.get('lib_name') or 'docs')
    host = f"{cfg.get('doc_host', '') or ''}{cfg.get('doc_baseurl', '') or ''}" if cfg.get('doc_host') else ''
    all_nbs = list_notebooks(nbs_dir)
    if not all_nbs: print(f'no notebooks in {nbs_dir}', file=sys.stderr); return 1
    pages = [(page_name(p), page_title(p, read_frontmatter(p))) for p in all_nbs]
    page_map = {p.name: page_name(p) for p in all_nbs}
    todo = all_nbs
    if only:
        want = {o.removesuffix('.ipynb') for o in only}
        todo = [p for p in all_nbs if p.stem in want or page_name(p)[:-5] in want]
        if len(todo) != len(want): print(f'unknown notebooks in --only {only}', file=sys.stderr); return 2
    t0 = time.time()
    print(f'executing {len(todo)} notebook(s) with {workers} worker(s): {", ".join(p.name for p in todo)}', flush=True)
    results = run_all(todo, workers, cell_timeout)
    if _fail(results): return 1
    if not only and out.exists():
        for f in out.iterdir():
            if f.is_file() and f.suffix in ('.html', '.css'): f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / 'site.css').write_text(SITE_CSS.lstrip(), encoding='utf-8')
    manifest = []
    for r in results:
        p = Path(r['path'])
        page = render_html(r, pages, brand, host, page_map, git_url(cfg))
        (out / page_name(p)).write_text(page, encoding='utf-8')
        has_plot = any('image/png' in o.get('data', {}) for c in r['nb']['cells'] for o in c.get('outputs', []))
        n_api = page.count(f'class="{API_CLASS}"')
        manifest.append(dict(notebook=p.name, page=page_name(p), title=page_title(p, r['frontmatter']),
                             api_blocks=n_api, has_plot=has_plot, seconds=round(r['seconds'], 1)))
        print(f'  wrote {out.name}/{page_name(p)} ({len(page)//1024} KiB, {n_api} API blocks, plot: {has_plot})')
    if not only: (out / 'pages.json').write_text(json.dumps(manifest, indent=1) + '\n', encoding='utf-8')
    print(f'docs built in {time.time() - t0:.0f}s -> {out}/index.html')
    return 0


def build_readme(nbs_dir: Path, root: Path, check: bool, cell_timeout) -> int:
    from nbdev.config import get_config
    cfg = get_config(nbs_dir)
    index = nbs_dir / (cfg.get('readme_nb') or 'index.ipynb')
    if not index.exists(): print(f'{index} not found', file=sys.stderr); return 1
    results = run_all([index], 1, cell_timeout)
    if _fail(results): return 1
    text, images = render_readme(results[0], docs_url(cfg))
    readme = root / 'README.md'
    if check:
        old = readme.read_text(encoding='utf-8') if readme.exists() else ''
        # fastai's epoch-time column (mm:ss) is the one output a seeded notebook cannot reproduce
        mask = lambda t: re.sub(r'(?<![\d:])\d\d:\d\d(?![\d:])', 'mm:ss', t)
        if mask(old) == mask(text): old = text
        stale = [rel for rel, b in images.items() if not (root / rel).exists() or (root / rel).read_bytes() != b]
        if old == text and not stale:
            print('README.md is up to date with nbs/index.ipynb'); return 0
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                   'README.md (committed)', 'README.md (from nbs/index.ipynb)'))
        for rel in stale: print(f'image out of date: {rel}')
        print('\nREADME.md is out of date: run `make readme`', file=sys.stderr)
        return 1
    readme.write_text(text, encoding='utf-8')
    imgdir = root / README_IMG_DIR
    if imgdir.exists():
        for f in imgdir.glob('*.png'):
            if f'{README_IMG_DIR}/{f.name}' not in images: f.unlink()
    for rel, b in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b)
    print(f'wrote README.md ({len(text)} chars, {len(images)} image(s))')
    return 0


DOC_TOOLS = ('nbdev', 'execnb', 'nbconvert', 'nbformat', 'ipykernel')   # what the pipeline imports besides the package

def _missing_tools() -> list:
    "The documentation tools that cannot be imported here (checked before any work, so the error is one line)"
    from importlib.util import find_spec
    return [name for name in DOC_TOOLS if find_spec(name) is None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--nbs', type=Path, default=ROOT / 'nbs', help='notebook folder (default: nbs/)')
    ap.add_argument('--out', type=Path, default=None, help='output folder (default: doc_path, _docs/)')
    ap.add_argument('--only', nargs='+', help='render only these notebooks (stems, e.g. 00_core index)')
    ap.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='notebooks executed at once')
    ap.add_argument('--cell-timeout', type=int, default=600, help='seconds per cell before failing (0: no limit)')
    ap.add_argument('--readme', action='store_true', help='regenerate README.md from index.ipynb (no HTML)')
    ap.add_argument('--check-readme', action='store_true', help='fail if README.md differs from index.ipynb')
    a = ap.parse_args(argv)
    missing = _missing_tools()
    if missing:
        print(f"build_docs.py: {', '.join(missing)} not installed: the documentation tools come with the [docs] extra "
              f"(also in [dev]): pip install -e \".[docs]\"", file=sys.stderr)
        return 2
    nbs = a.nbs.resolve()
    timeout = a.cell_timeout or None
    if a.readme or a.check_readme:
        return build_readme(nbs, nbs.parent, a.check_readme, timeout)
    if a.out is None:
        from nbdev.config import get_config
        a.out = Path(get_config(nbs).doc_path)
    return build_docs(nbs, a.out.resolve(), a.only, a.workers, timeout)


if __name__ == '__main__':
    sys.exit(main())

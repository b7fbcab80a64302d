"""Build the documentation site into `_docs/` and regenerate README.md from `nbs/index.ipynb`:

    python tools/docs.py

Where Quarto is installed this is nbdev's own build (`nbdev_docs`). Quarto cannot be installed offline, so without it
nbdev still processes the notebooks exactly as it would for Quarto (front matter, show_doc cells, doc links), a small
pre-step does what Quarto then does with them, and Sphinx + myst-nb renders the result without executing anything.
Either way README.md comes from the same conversion of `nbs/index.ipynb`, so it never depends on which path ran.
"""
import json, os, re, shutil, sys, tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS, DOCS = ROOT / 'nbs', ROOT / '_docs'


def readme() -> str:
    "README.md: `index.ipynb` as Markdown (CI runs what its Install and Test sections say)."
    from nbconvert import MarkdownExporter
    return MarkdownExporter().from_filename(str(NBS / 'index.ipynb'))[0]


def nbdev_process() -> Path:
    "nbdev's steps before Quarto (`nbdev_docs` without its Quarto check): config, doc index, sidebar, processed notebooks."
    import nbdev.doclinks, nbdev.quarto
    from nbdev.serve import proc_nbs
    nbdev.quarto.refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev.quarto.nbdev_sidebar.__wrapped__()
    return proc_nbs(n_workers=0, force=True)


def pandoc_id(text:str) -> str:
    "The anchor Quarto (pandoc) gives a heading, which is what nbdev's doc links point at."
    text = re.sub(r'[^\w\s.-]', '', text).strip().lower()
    return re.sub(r'^[^a-z]+', '', re.sub(r'\s+', '-', text))


def _cell_options(source:str) -> tuple[dict, str]:
    "The `#| key: value` options at the top of a cell, and the source without them."
    lines, opts = source.splitlines(), {}
    while lines and lines[0].startswith('#|'):
        key, _, value = lines.pop(0)[2:].partition(':')
        opts[key.strip()] = value.strip()
    return opts, '\n'.join(lines)


class Page:
    "One processed notebook turned into what Sphinx renders as Quarto would: its title, file name, links and anchors."
    def __init__(self, proc_nb:Path, proc_root:Path, site_url:str, pages:dict):
        self.nb = json.loads(proc_nb.read_text())
        self.rel = proc_nb.relative_to(proc_root)
        self.site_url, self.pages = site_url.rstrip('/') + '/', pages
        cell = self.nb['cells'][0]
        self.meta = yaml.safe_load(''.join(cell['source']).strip().strip('-')) if cell['cell_type'] == 'raw' else {}
        name = self.meta.get('output-file', self.rel.with_suffix('.html').name)
        self.out = self.rel.parent / Path(name).with_suffix('.ipynb')

    def link(self, target:str) -> str:
        "A link as it must read from this page: site URLs and notebook names become paths relative to the page."
        if target.startswith(self.site_url): target = target[len(self.site_url):]   # relative to the site root
        else:
            path, hash_, anchor = target.partition('#')
            if re.match(r'^[a-z]+:', target) or not path.endswith('.ipynb'): return target
            nb = os.path.normpath(self.rel.parent / path)   # notebook links are relative to the notebook
            target = Path(self.pages.get(nb, nb)).with_suffix('.html').as_posix() + hash_ + anchor
        path, hash_, anchor = target.partition('#')
        return Path(os.path.relpath(path or self.out.with_suffix('.html'), self.out.parent)).as_posix() + hash_ + anchor

    def markdown(self, text:str) -> str:
        "Markdown as Quarto would read it: links to pages, anchors on show_doc headings, code blocks shown as written."
        parts = re.split(r'(```.*?```)', text, flags=re.S)   # odd parts are code blocks
        return ''.join(self._code(p) if i % 2 else self._prose(p) for i, p in enumerate(parts))

    @staticmethod
    def _code(block:str) -> str:
        # nbdev links the types in show_doc signatures, which sit in code blocks, where Markdown is shown, not followed
        return re.sub(r'\[`?([^\]`]*)`?\]\([^)\s]*\)', r'\1', block)

    def _prose(self, text:str) -> str:
        # Quarto's link attributes ({target=...}) have no MyST spelling: such links become HTML
        text = re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)\{[^}]*\}',
                      lambda m: f'<a class="source-link" href="{self.link(m[2])}" target="_blank">{m[1]}</a>', text)
        text = re.sub(r'(\]\()([^)\s]+)(\))', lambda m: m[1] + self.link(m[2]) + m[3], text)
        # show_doc headings carry pandoc's anchor, which doc links use and Sphinx would spell differently
        return re.sub(r'^(#{2,6}) (.+)$', lambda m: f'<span id="{pandoc_id(m[2])}"></span>\n\n{m[1]} {m[2]}', text, flags=re.M)

    def cells(self):
        if self.meta:
            head = f"# {self.meta['title']}\n\n> {self.meta['description']}" if 'description' in self.meta else f"# {self.meta['title']}"
            yield {'cell_type': 'markdown', 'id': 'title', 'metadata': {}, 'source': head}
        for cell in self.nb['cells'][1 if self.meta else 0:]:
            opts, source = _cell_options(''.join(cell['source']))
            if opts.get('include') == 'false': continue
            cell = {**cell, 'source': source, 'metadata': {}}
            if cell['cell_type'] == 'markdown': cell['source'] = self.markdown(source)
            if cell['cell_type'] != 'code': yield cell; continue
            tags = [t for t, opt in (('remove-input', 'echo'), ('remove-output', 'output')) if opts.get(opt) == 'false']
            cell['metadata'] = {'tags': tags} if tags else {}
            cell['outputs'] = [self._output(out) for out in cell.get('outputs', [])]
            yield cell

    def _output(self, out:dict) -> dict:
        md = out.get('data', {}).get('text/markdown')
        if md is None: return out
        # `output: asis` (show_doc): the Markdown is the page, and its plain-text twin only a fallback; the rule that
        # opens a show_doc entry would read as the start of front matter to MyST
        return {**out, 'data': {'text/markdown': self.markdown(''.join(md).lstrip('-').lstrip())}}

    def write(self, dest:Path, extra_cells=()):
        nb = {**self.nb, 'cells': [*self.cells(), *extra_cells]}
        (dest / self.out).parent.mkdir(parents=True, exist_ok=True)
        (dest / self.out).write_text(json.dumps(nb))


def _toctree(caption:str, pages:list) -> dict:
    body = '\n'.join(str(p.with_suffix('')) for p in pages)
    return {'cell_type': 'markdown', 'id': f'toc-{caption.lower()}', 'metadata': {}, 'source': f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{body}\n```"}


CONF = '''
project = {title!r}
author = {author!r}
copyright = {copyright!r}
extensions = ['myst_nb', 'sphinx-mathjax-offline']  # MathJax 3 served from the site itself, not a CDN
nb_execution_mode = 'off'          # the notebooks' outputs are the ones nbdev_test checked; nothing is re-run
myst_enable_extensions = ['dollarmath', 'amsmath']
myst_all_links_external = True     # links are already the site's relative URLs; the test suite checks every one
html_theme = 'sphinx_book_theme'
html_title = {title!r}
html_static_path = ['_static']
html_css_files = ['styles.css']
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {{'repository_url': {git_url!r}, 'use_repository_button': True}}
html_context = {{'default_mode': 'light'}}   # without it a first visit logs a console error (no stored mode)
'''


def sphinx_build(proc:Path):
    "Render the processed notebooks into `_docs/` with Sphinx."
    from nbdev.config import get_config
    from sphinx.cmd.build import build_main
    cfg = get_config()
    procs = sorted(p for p in proc.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    names = {}   # processed notebook -> page: filled before any page is written, as links between pages need it
    pages = [Page(p, proc, cfg.doc_host + cfg.doc_baseurl, names) for p in procs]
    names.update({page.rel.as_posix(): page.out.as_posix() for page in pages})
    index = next(p for p in pages if p.out == Path('index.ipynb'))
    chapters = [p.out for p in pages if p is not index and p.out.parent == Path('.')]
    sections = sorted({p.out.parent for p in pages} - {Path('.')})
    toc = [_toctree('Chapters', chapters)] + [_toctree(s.name.capitalize(), [p.out for p in pages if p.out.parent == s])
                                              for s in sections]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / 'src'
        for page in pages: page.write(src, toc if page is index else ())
        (src / '_static').mkdir()
        shutil.copy(NBS / 'styles.css', src / '_static' / 'styles.css')
        (src / 'conf.py').write_text(CONF.format(title=cfg.title, author=cfg.author, copyright=cfg.copyright, git_url=cfg.git_url))
        # myst-nb writes the outputs' images beside the output folder: build in the scratch folder, then move
        status = build_main(['-b', 'html', '-q', '-d', str(Path(tmp) / 'doctrees'), str(src), str(Path(tmp) / 'html')])
        if status: sys.exit(f'tools/docs.py: sphinx-build failed (status {status})')
        # the theme copies its Jinja macro files into _static; unrendered, they are not pages and their links are dead
        for macros in (Path(tmp) / 'html' / '_static').glob('*webpack-macros.html'): macros.unlink()
        shutil.rmtree(DOCS, ignore_errors=True)
        shutil.move(Path(tmp) / 'html', DOCS)
    return pages


def main():
    os.chdir(ROOT)   # nbdev finds its settings from the working directory
    (ROOT / 'README.md').write_text(readme())
    if shutil.which('quarto'):
        import nbdev.quarto
        nbdev.quarto.nbdev_docs.__wrapped__()   # its own README step finds README.md up to date
        return
    pages = sphinx_build(nbdev_process())
    print(f'{len(pages)} pages in {DOCS.relative_to(ROOT)}/ (Sphinx; Quarto not installed); README.md regenerated')


if __name__ == '__main__': main()

"""The notebooks are the source: the exported library must match them, and the docs pipeline must accept them.

Both checks run on a copy of the repository so that the working tree is never rewritten by a test.
"""
import base64, html, json, os, posixpath, re, shutil, signal, subprocess, sys, tempfile, threading, time
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    dst = tmp_path_factory.mktemp("repo") / "audiojepa"
    # Notebooks read the AudioSet metadata from ../shared, as they do in a checkout.
    if (ROOT.parent / "shared").exists(): (dst.parent / "shared").symlink_to(ROOT.parent / "shared")
    # experiments/results and benchmarks/results hold the (git-ignored, gigabytes) corpora and outputs where they were built
    ignore = shutil.ignore_patterns(".git", ".venv", "venv", "_proc", "_docs", "__pycache__", "*.egg-info", "runs", "results")
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)
    return dst


def _run(args, cwd):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, f"{args} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_notebooks_name_their_kernel():
    "JupyterLab opens every chapter without asking for a kernel: each notebook names the python3 kernelspec."
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        kernel = json.loads(nb.read_text())["metadata"].get("kernelspec", {})
        assert kernel.get("name") == "python3" and kernel.get("language") == "python", nb.name


# a path of the machine a notebook was run on: an environment, a system or home folder (temporary folders, whose
# names are random and mean nothing outside the run, are allowed)
MACHINE_PATH = re.compile(r'/\.?venv/|site-packages|dist-packages|/usr/(?:lib|local|bin|share|include)/|/opt/|/work/|'
                          r'/root/|/home/[^/\s]+/|/Users/[^/\s]+/|[A-Za-z]:\\Users\\')

def _output_texts(output:dict) -> list[str]:
    "The text of a stored output as the site shows it: streams, results, errors."
    texts = [''.join(output.get('text', ''))] + ['\n'.join(output.get('traceback', []))]
    for kind, value in output.get('data', {}).items():
        if kind.startswith('text/') or kind.endswith('json'): texts.append(value if isinstance(value, str) else ''.join(value))
    return texts

def test_stored_outputs_name_no_machine_paths():
    "No stored output (which the site publishes) names a path of the machine outside the repo, e.g. a warning from `.venv/`."
    found = []
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts: continue
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            for output in cell.get("outputs", []):
                for text in _output_texts(output):
                    found += [f"{nb.relative_to(ROOT)} cell {i}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
                              for m in MACHINE_PATH.finditer(text)]
    assert not found, "stored outputs that name machine paths (strip them, or stop them where they start):\n" + "\n".join(found)


def test_export_matches_notebooks(repo_copy):
    "`nbdev_export` on a clean checkout must change nothing: the committed modules are what the notebooks say."
    _run([sys.executable, "-c", "from nbdev.doclinks import nbdev_export; nbdev_export.__wrapped__()"], repo_copy)
    stale = [p.name for p in sorted((ROOT / "audiojepa").glob("*.py"))
             if (repo_copy / "audiojepa" / p.name).read_text() != p.read_text()]
    missing = sorted({p.name for p in (repo_copy / "audiojepa").glob("*.py")} - {p.name for p in (ROOT / "audiojepa").glob("*.py")})
    assert not stale and not missing, f"run nbdev_export and commit: stale {stale}, missing {missing}"


def test_docs_processing(repo_copy):
    "The step before Quarto (what `nbdev_docs` runs first) must process every notebook without error."
    code = ("import nbdev.quarto as q; from nbdev.serve import proc_nbs; "
            "q.refresh_quarto_yml(); q.nbdev_sidebar.__wrapped__(); proc_nbs(n_workers=0)")
    _run([sys.executable, "-c", code], repo_copy)
    proc = repo_copy / "_proc"
    nbs = sorted(p.relative_to(ROOT / "nbs") for p in (ROOT / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    assert nbs, "no notebooks found"
    for nb in nbs:
        assert (proc / nb).exists(), f"docs processing produced nothing for {nb}"


# ------------------------------------------------------------------------------------------------ the built site
sys.path.insert(0, str(ROOT / 'tools'))
import docs   # tools/docs.py: the one command that builds the site

HIDDEN = re.compile(r'^#\|\s*(hide\b|include:\s*false|export|exporti)\b', re.M)


@pytest.fixture(scope="module")
def site(repo_copy):
    "The site as `python tools/docs.py` builds it on a checkout (offline: nothing it needs is downloaded)."
    _run([sys.executable, "tools/docs.py"], repo_copy)
    return repo_copy / "_docs"


class _Page(HTMLParser):
    "What the checks need of an HTML page: the ids it defines, the URLs it refers to, and its visible text."
    def __init__(self, path:Path):
        super().__init__()
        self.ids, self.refs, self.text = set(), [], []
        self.feed(path.read_text())
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if 'id' in attrs: self.ids.add(attrs['id'])
        if tag == 'a' and 'name' in attrs: self.ids.add(attrs['name'])
        for key in ('href', 'src'):
            if attrs.get(key) is not None: self.refs.append(attrs[key])
    def handle_data(self, data): self.text.append(data)


def _pages(site): return {p.relative_to(site).as_posix(): _Page(p) for p in sorted(site.rglob('*.html'))}


def test_readme_is_generated():
    "README.md is what `python tools/docs.py` makes of `nbs/index.ipynb`: edit the notebook, then run it."
    assert (ROOT / 'README.md').read_text() == docs.readme(), "README.md is stale: run python tools/docs.py"


def test_site_has_a_page_per_notebook(site, repo_copy):
    "`_docs/index.html` and one page per chapter and tutorial, named as nbdev names them (`output-file`)."
    names = {p.rel.as_posix(): p.out.with_suffix('.html').as_posix()
             for p in (docs.Page(nb, repo_copy / '_proc', '', {}) for nb in sorted((repo_copy / '_proc').rglob('*.ipynb')))}
    assert 'index.ipynb' in names and any(n.startswith('tutorials/') for n in names), names
    missing = [page for page in names.values() if not (site / page).is_file()]
    assert not missing, f"pages not built: {missing}"


def test_links_resolve(site):
    "Every relative link, image and script of every page points at a file of the site, and every #anchor at an id in it."
    pages, dead = _pages(site), []
    for name, page in pages.items():
        for ref in page.refs:
            if re.match(r'^[a-z]+:', ref) or ref.startswith('//'): continue   # other sites, mailto:, data:
            path, _, anchor = ref.split('?')[0].partition('#')
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), path)) if path else name
            if not (site / target).exists(): dead.append(f"{name}: {ref} (no file)")
            elif anchor and target.endswith('.html') and anchor not in pages[target].ids: dead.append(f"{name}: {ref} (no anchor)")
    print(f"{sum(len(p.refs) for p in pages.values())} links in {len(pages)} pages, {len(dead)} dead")
    assert not dead, "dead links:\n" + "\n".join(dead)


def test_hidden_cells_stay_hidden(site, repo_copy):
    "No line that only a hidden or export-only cell has (`#| hide`, `include: false`, `export`) shows on its page."
    leaks = []
    for nb_path in sorted((repo_copy / '_proc').rglob('*.ipynb')):
        page = docs.Page(nb_path, repo_copy / '_proc', '', {})
        source = json.loads((repo_copy / 'nbs' / page.rel).read_text())
        cells = [''.join(c['source']) for c in source['cells']]
        hidden = [c for c in cells if HIDDEN.search(c)]
        # lines a visible cell (or an output, e.g. a show_doc signature) also has may show legitimately
        visible = '\n'.join([c for c in cells if not HIDDEN.search(c)] + [json.dumps(page.nb, ensure_ascii=False)])
        text = html.unescape(''.join(_Page(site / page.out.with_suffix('.html')).text))
        for line in {l.strip() for c in hidden for l in c.splitlines()}:
            if len(line) >= 20 and not line.startswith('#|') and line not in visible and line in text:
                leaks.append(f"{page.out}: {line}")
    assert not leaks, "hidden cells shown:\n" + "\n".join(leaks)


def test_every_show_doc_entry_is_on_its_page(site, repo_copy):
    "Each show_doc entry of a processed notebook is on its page, under the anchor nbdev's doc links use."
    missing, n = [], 0
    for nb_path in sorted((repo_copy / '_proc').rglob('*.ipynb')):
        page = docs.Page(nb_path, repo_copy / '_proc', '', {})
        ids = _Page(site / page.out.with_suffix('.html')).ids
        for cell in page.nb['cells']:
            if 'show_doc(' not in ''.join(cell.get('source', '')): continue
            for out in cell.get('outputs', []):
                for heading in re.findall(r'^#{2,6} (.+)$', ''.join(out.get('data', {}).get('text/markdown', '')), re.M):
                    n += 1
                    if docs.pandoc_id(heading) not in ids: missing.append(f"{page.out}: {heading}")
    assert n > 100, f"only {n} show_doc entries found"
    assert not missing, "show_doc entries missing:\n" + "\n".join(missing)


# ------------------------------------------------------------------------------------------- in a real browser
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
ARTEFACTS = Path(os.environ.get('AUDIOJEPA_ARTEFACTS', ROOT / 'tests' / 'artefacts'))


class Chromium:
    "Headless Chromium driven over the DevTools protocol on a pipe (no driver package, no port): load, inspect, screenshot."
    def __init__(self):
        (to_chrome_r, self._w), (self._r, from_chrome_w) = os.pipe(), os.pipe()
        def fds():   # the protocol pipe is fds 3 (commands in) and 4 (replies out); copies first, as either may be 3 or 4
            commands, replies = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(commands, 3); os.dup2(replies, 4)
        self.profile = tempfile.TemporaryDirectory()   # a fresh profile: no stored theme, cache or cookies
        # as root in a container: no sandbox, and no reliance on a large /dev/shm
        self.proc = subprocess.Popen([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--remote-debugging-pipe',
                                      '--no-first-run', '--user-data-dir=' + self.profile.name, 'about:blank'],
                                     preexec_fn=fds, pass_fds=(3, 4), start_new_session=True,   # one group: see close
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r); os.close(from_chrome_w)
        self._buf, self._id, self.events = b'', 0, []
        target = self.send('Target.createTarget', url='about:blank')['targetId']
        self.session = self.send('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        for domain in ('Page', 'Runtime', 'Log'): self.send(f'{domain}.enable', session=True)
        self.send('Emulation.setDeviceMetricsOverride', session=True, width=1280, height=1600, deviceScaleFactor=1, mobile=False)

    def _read(self) -> dict:
        while b'\0' not in self._buf:
            chunk = os.read(self._r, 1 << 20)
            if not chunk: raise RuntimeError('chromium closed the DevTools pipe')
            self._buf += chunk
        msg, self._buf = self._buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method, session=False, **params):
        self._id += 1
        msg = {'id': self._id, 'method': method, 'params': params, **({'sessionId': self.session} if session else {})}
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        while True:
            reply = self._read()
            if reply.get('id') == self._id:
                if 'error' in reply: raise RuntimeError(f"{method}: {reply['error']}")
                return reply['result']
            self.events.append(reply)

    def errors(self) -> list:
        "Console errors, uncaught exceptions and failed loads since the last call."
        found = []
        for e in self.events:
            m, p = e.get('method'), e.get('params', {})
            if m == 'Runtime.exceptionThrown': found.append(p['exceptionDetails'].get('exception', {}).get('description') or p['exceptionDetails']['text'])
            elif m == 'Runtime.consoleAPICalled' and p['type'] == 'error': found.append(' '.join(str(a.get('value', a.get('description'))) for a in p['args']))
            # the browser asks every site for /favicon.ico by itself; the pages do not refer to one
            elif m == 'Log.entryAdded' and p['entry']['level'] == 'error' and 'favicon.ico' not in p['entry'].get('url', ''): found.append(f"{p['entry']['text']} {p['entry'].get('url', '')}")
        self.events = []
        return found

    def load(self, url:str) -> dict:
        "Open `url`, wait until it is loaded and MathJax has typeset, and say what rendered."
        self.send('Page.navigate', session=True, url=url)
        while not any(e.get('method') == 'Page.loadEventFired' for e in self.events): self.events.append(self._read())
        probe = """(window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve()).then(() => ({
            math: document.querySelectorAll('mjx-container').length,
            figures: [...document.images].filter(i => i.src.includes('/_images/') && i.complete && i.naturalWidth > 0).length,
            broken_images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
            signatures: document.querySelectorAll('a[href*="/blob/"]').length,   // show_doc's [source] links
            title: document.title}))"""
        return self.send('Runtime.evaluate', session=True, expression=probe, awaitPromise=True, returnByValue=True)['result']['value']

    def screenshot(self, path:Path, at:str=None):
        "The viewport as a PNG, scrolled to the first element matching the CSS selector `at` if given."
        # a little above the element: the theme's header bar would hide its top
        if at: self.send('Runtime.evaluate', session=True,
                         expression=f"window.scrollTo(0, document.querySelector({at!r}).getBoundingClientRect().top + window.scrollY - 80)")
        path.write_bytes(base64.b64decode(self.send('Page.captureScreenshot', session=True, format='png')['data']))

    def close(self):
        # killing the browser alone left its helper processes writing to the profile while it was being removed
        # ("Directory not empty: 'Default'"): ask it to close, then kill whatever of its group is left
        try: self.send('Browser.close'); self.proc.wait(timeout=10)
        except (OSError, RuntimeError, subprocess.TimeoutExpired): pass
        try: os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        self.proc.wait()
        for _ in range(50):   # until the group is gone (5 s at most: a killed process may take a moment to exit)
            try: os.killpg(self.proc.pid, 0)
            except ProcessLookupError: break
            time.sleep(0.1)
        os.close(self._w); os.close(self._r)
        self.profile.cleanup()


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (README's install line: apt-get install chromium)")
def test_pages_render_in_chromium(site):
    "Headless Chromium opens the index, a chapter with figures and math and an API chapter without a console error."
    server = ThreadingHTTPServer(('127.0.0.1', 0), partial(SimpleHTTPRequestHandler, directory=str(site)))
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (ARTEFACTS / 'screenshots').mkdir(parents=True, exist_ok=True)
    browser = Chromium()
    try:
        seen = {}
        # each page is shot where what it must show starts: its top, the first formula, figure or show_doc entry
        shots = {'index.html': {'index': None}, 'masking.html': {'masking-math': 'mjx-container'},
                 'embed.html': {'embed-figure': 'img[src*="_images/"]', 'embed-api': 'a[href*="/blob/"]'}}
        for page, views in shots.items():
            seen[page] = browser.load(f"http://127.0.0.1:{server.server_port}/{page}")
            for name, at in views.items(): browser.screenshot(ARTEFACTS / 'screenshots' / f'{name}.png', at)
            assert browser.errors() == [], f"{page}: console errors"
            assert seen[page]['broken_images'] == [], page
    finally:
        browser.close(); server.shutdown()
    print(seen)
    assert seen['masking.html']['math'] > 0, "MathJax rendered no formula"
    assert seen['embed.html']['figures'] > 0 and seen['embed.html']['signatures'] > 5

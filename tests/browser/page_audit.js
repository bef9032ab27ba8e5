// Checks run inside each page of the built book by tests/browser/conftest.py.
// Defines window.__bnAudit; every function returns plain JSON for the Python side.
(() => {
  const article = () =>
    document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const short = (s, n = 80) => (s || "").replace(/\s+/g, " ").trim().slice(0, n);

  // Wait for fonts, MathJax's first typesetting pass and every image.
  async function ready() {
    if (document.fonts) await document.fonts.ready;
    if (document.querySelector('script[src*="mathjax"]')) {
      const t0 = Date.now();
      while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
        if (Date.now() - t0 > 15000) return "MathJax's script is on the page but it did not start";
        await sleep(50);
      }
      await MathJax.startup.promise;
    }
    for (const img of document.images) if (img.loading === "lazy") img.loading = "eager";
    await Promise.all([...document.images].map((i) => i.decode().catch(() => null)));
    return "ok";
  }

  // TeX that escaped MathJax: delimiters or commands left in the visible text.
  const TEX_PATTERNS = [
    [/\\\(|\\\)|\\\[|\\\]/, "TeX delimiter \\( \\) \\[ \\]"],
    [/\$\$/, "$$"],
    [/\\(begin|end)\{/, "\\begin/\\end"],
    [
      /\\(frac|sqrt|hat|bar|mathrm|mathbf|mathcal|sum|prod|partial|nabla|gamma|beta|mu|sigma|epsilon|varepsilon|cdot|times|left|right|operatorname|mathbb)(?![a-zA-Z])/,
      "TeX command",
    ],
    [/(^|[^\\$\w])\$[^$\s][^$]*[\\^_{}][^$]*\$/, "$...$ inline math"],
  ];
  const NOT_PROSE = "pre, code, script, style, textarea, kbd, samp, mjx-container, .highlight";

  function rawTex(root) {
    const found = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || el.closest(NOT_PROSE)) continue;
      for (const [re, what] of TEX_PATTERNS) {
        const m = n.textContent.match(re);
        if (m) {
          const i = Math.max(0, m.index - 30);
          found.push(`${what}: "...${short(n.textContent.slice(i, i + 90), 90)}..."`);
          break;
        }
      }
      if (found.length >= 10) break;
    }
    return found;
  }

  async function collect() {
    const art = article();
    const mathNodes = [...document.querySelectorAll("span.math, div.math")];
    const unrendered = mathNodes.filter((m) => !m.querySelector("mjx-container"));
    const errors = [...document.querySelectorAll("mjx-merror")].map(
      (e) => e.getAttribute("data-mjx-error") || short(e.textContent)
    );
    // A backslash drawn inside \text{...}: TeX commands there are not expanded, so
    // \text{running\_mean} shows "running\_mean" (write \text{running_mean}).
    const withBackslash = new Set(
      [...document.querySelectorAll("mjx-mtext mjx-c.mjx-c5C")].map((c) => c.closest(".math"))
    );
    for (const math of withBackslash) {
      errors.push(`a backslash drawn as text inside \\text{...} in ${short(math?.textContent, 60)}`);
    }
    const images = [...document.images].map((img) => ({
      src: img.currentSrc || img.src,
      natural: img.naturalWidth,
      complete: img.complete,
      visible: !!(img.offsetWidth || img.offsetHeight),
      content: art.contains(img) && !img.closest(".cell_input"),
    }));
    const figures = [...art.querySelectorAll("figure")].map((f) => ({
      id: f.id || "",
      number: short(f.querySelector("figcaption .caption-number")?.textContent),
      caption: short(f.querySelector("figcaption")?.textContent),
    }));
    // Content images (plots, diagrams) outside any captioned figure.
    const loose = [...art.querySelectorAll("img")]
      .filter((img) => !img.closest("figure") && !img.closest(".cell_input"))
      .map((img) => img.currentSrc || img.src);
    const links = [...document.querySelectorAll("a[href]")].map((a) => ({
      href: a.href,
      raw: a.getAttribute("href"),
      text: short(a.textContent, 50),
    }));
    return {
      url: location.href,
      title: document.title,
      h1: short(art.querySelector("h1")?.textContent),
      description: document.querySelector('meta[name="description"]')?.content || "",
      favicon: document.querySelector('link[rel~="icon"]')?.href || "",
      logo: [...document.querySelectorAll(".navbar-brand img")].map((i) => ({
        src: i.currentSrc || i.src,
        natural: i.naturalWidth,
      })),
      math: {
        nodes: mathNodes.length,
        rendered: mathNodes.length - unrendered.length,
        containers: document.querySelectorAll("mjx-container").length,
        unrendered: unrendered.slice(0, 5).map((m) => short(m.textContent)),
        errors,
      },
      rawTex: rawTex(art),
      images,
      figures,
      looseImages: loose,
      links,
    };
  }

  // A box that scrolls sideways by itself (a table wrapper, code, output, display or long
  // inline math): what is inside it may be wider than the screen, the box itself may not.
  // Inline boxes ignore `overflow`, so they do not count whatever their computed style says.
  const scrollBox = (el) => {
    const cs = getComputedStyle(el);
    return (cs.overflowX === "auto" || cs.overflowX === "scroll") && !/^(inline|contents)$/.test(cs.display);
  };

  // The right and left edges of what `el` draws: its own box, its text and its elements,
  // counting a scrolling box inside it by its own box rather than by its content.
  function edges(el) {
    const r = el.getBoundingClientRect();
    let right = r.right, left = r.left;
    const add = (b) => {
      if (b.width || b.height) {
        right = Math.max(right, b.right);
        left = Math.min(left, b.left);
      }
    };
    const range = document.createRange();
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => {
        if (n.nodeType !== Node.ELEMENT_NODE || !scrollBox(n)) return NodeFilter.FILTER_ACCEPT;
        add(n.getBoundingClientRect()); // the box counts, not what scrolls inside it
        return NodeFilter.FILTER_REJECT;
      },
    });
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.nodeType === Node.TEXT_NODE) {
        if (!n.textContent.trim()) continue;
        range.selectNodeContents(n);
        add(range.getBoundingClientRect());
      } else {
        add(n.getBoundingClientRect());
      }
    }
    return { right, left };
  }

  // Text that sticks out past the right (or left) edge of the viewport.
  function overflow() {
    const art = article();
    const vw = document.documentElement.clientWidth;
    // Elements inside a scrolling box of the article (tables, code, outputs, display math)
    // may be wider than the screen: the box scrolls, not the page.
    const scrollsInside = (el) => {
      for (let p = el.parentElement; p && p !== art; p = p.parentElement) if (scrollBox(p)) return true;
      return false;
    };
    const bad = [];
    const sel = "p, li, dt, dd, h1, h2, h3, h4, h5, h6, figcaption, blockquote, caption, th, td";
    let scrolled = 0;
    for (const el of art.querySelectorAll(sel)) {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height || scrollsInside(el)) continue;
      const { right, left } = edges(el);
      if (right > vw + 1 || left < -1) {
        bad.push(`<${el.tagName.toLowerCase()}> right edge ${Math.round(right)}px: "${short(el.textContent, 60)}"`);
      }
      if (bad.length >= 10) break;
    }
    // Inline formulas too wide for the screen, which scroll in their own box (for the report).
    for (const m of art.querySelectorAll("mjx-container:not([display='true'])")) {
      if (scrollBox(m) && m.scrollWidth > m.clientWidth + 1) scrolled++;
    }
    const container = art.closest(".bd-article-container") || art;
    return {
      viewport: vw,
      pageWidth: document.documentElement.scrollWidth,
      articleScrolls: container.scrollWidth > container.clientWidth + 1,
      articleWidths: [container.scrollWidth, container.clientWidth],
      scrollingInlineMath: scrolled,
      bad,
    };
  }

  // In the dark theme: how much of each content image is transparent, and what is behind it.
  async function darkFigures() {
    const root = document.documentElement;
    root.dataset.theme = "dark";
    root.dataset.mode = "dark";
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const out = [];
    for (const img of article().querySelectorAll("img")) {
      const src = img.currentSrc || img.src;
      if (!img.naturalWidth) {
        out.push({ src, error: "image not decoded" });
        continue;
      }
      const scale = Math.min(1, 400 / Math.max(img.naturalWidth, img.naturalHeight));
      const w = Math.max(1, Math.round(img.naturalWidth * scale));
      const h = Math.max(1, Math.round(img.naturalHeight * scale));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(img, 0, 0, w, h);
      let data;
      try {
        data = ctx.getImageData(0, 0, w, h).data;
      } catch (e) {
        out.push({ src, error: `pixels cannot be read: ${e}` });
        continue;
      }
      let transparent = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] < 250) transparent++;
      out.push({
        src,
        transparent: transparent / (w * h),
        background: getComputedStyle(img).backgroundColor,
        visible: !!(img.offsetWidth || img.offsetHeight),
      });
    }
    return out;
  }

  function lightTheme() {
    document.documentElement.dataset.theme = "light";
    document.documentElement.dataset.mode = "light";
  }

  window.__bnAudit = { ready, collect, overflow, darkFigures, lightTheme };
})();

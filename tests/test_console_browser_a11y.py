"""The console on a 360-pixel-wide phone, in a real browser (chromium via playwright): every
page fits the width (no sideways scrolling), every form control has an accessible name, and
every piece of text meets WCAG AA contrast against the background it is drawn on.

docs/console.md promises all three; the colours and sizes are computed by the browser
(`getComputedStyle`), so a stylesheet change that breaks one of them fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from tests._console_kit import (
    CUSTOMER_EMAIL,
    PASSWORD,
    TESTER_LEAD,
    TESTER_RECIPES,
    ConsoleSite,
    console_config,
    start,
)

PHONE = {"width": 360, "height": 740}

# One pass over the page in the browser: what overflows, which controls have no name, which
# text is too faint. Contrast per WCAG 2.x: relative luminance of sRGB colours, background
# found by compositing the ancestors' background colours (page canvas white); large text
# (24 px, or 18.66 px bold) needs 3:1, all other text 4.5:1.
AUDIT = r"""
() => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const root = document.documentElement;
  const width = root.clientWidth;
  const shown = el => {
    const style = getComputedStyle(el);
    return el.getClientRects().length > 0 && style.visibility !== "hidden"
      && style.display !== "none";
  };
  const describe = el => {
    const id = el.id ? "#" + el.id : "";
    const cls = el.classList.length ? "." + [...el.classList].join(".") : "";
    const text = (el.innerText || el.value || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return `${el.tagName.toLowerCase()}${id}${cls} "${text}"`;
  };

  // 1. Nothing wider than the screen (the widest offenders, for the message).
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!shown(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 && box.left > -1000) {  // the skip link hides far left
      let inside = false;  // a scrolling box (overflow-x: auto) may hold wider content
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        const ox = getComputedStyle(p).overflowX;
        if ((ox === "auto" || ox === "scroll" || ox === "hidden")
            && p.getBoundingClientRect().right <= width + 0.5) { inside = true; break; }
      }
      if (!inside) wide.push(`${describe(el)} right=${Math.round(box.right)}`);
    }
  }

  // 2. Every form control has an accessible name.
  const nameOf = el => {
    const aria = (el.getAttribute("aria-label") || "").trim();
    if (aria) return aria;
    const by = el.getAttribute("aria-labelledby");
    if (by) {
      const text = by.split(/\s+/)
        .map(id => (document.getElementById(id) || {}).textContent || "").join(" ").trim();
      if (text) return text;
    }
    const labels = [...(el.labels || [])].map(l => l.textContent).join(" ").trim();
    if (labels) return labels;
    if (el.tagName === "BUTTON") return el.textContent.trim();
    if (el.tagName === "INPUT" && ["submit", "button", "reset"].includes(el.type)) {
      return (el.value || "").trim();
    }
    return "";
  };
  const controls = [...document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button")];
  const unnamed = controls.filter(el => !nameOf(el)).map(describe);

  // 3. Contrast of every visible text (and every control's own text).
  const parse = css => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const parts = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const background = el => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour && colour.a > 0) {
        layers.push(colour);
        if (colour.a >= 1) break;
      }
    }
    let base = {r: 255, g: 255, b: 255, a: 1};
    for (const layer of layers.reverse()) base = over(layer, base);
    return base;
  };
  const channel = v => {
    const s = v / 255;
    return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  };
  const luminance = c => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const ratio = (x, y) => {
    const [hi, lo] = [luminance(x), luminance(y)].sort((p, q) => q - p);
    return (hi + 0.05) / (lo + 0.05);
  };
  const texts = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.textContent.trim() && node.parentElement) texts.add(node.parentElement);
  }
  controls.forEach(el => texts.add(el));
  const faint = [];
  let checked = 0;
  for (const el of texts) {
    if (!shown(el) || el.closest("svg, script, style, noscript") || el.disabled) continue;
    const style = getComputedStyle(el);
    const ink = parse(style.color);
    if (!ink) continue;
    const bg = background(el);
    const value = ratio(over(ink, bg), bg);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    checked += 1;
    const under = [bg.r, bg.g, bg.b].map(Math.round).join(", ");
    if (value < need) {
      const why = `${style.color} on rgb(${under}) = ${value.toFixed(2)} < ${need}`;
      faint.push(`${describe(el)}: ${why}`);
    }
  }
  return {
    scrollWidth: root.scrollWidth, clientWidth: width, wide: wide.slice(0, 8),
    controls: controls.length, unnamed, checked, faint,
  };
}
"""

# (page, path): the signed-in pages, each with something on it.
PAGES = [
    ("overview", "/"),
    ("connections", "/connections"),
    ("dead letters", "/dead-letters"),
    ("tester", "/tester?event=customer.created"),
    ("records", f"/records?q={CUSTOMER_EMAIL}"),
    ("activity", "/activity"),
]


def _phone(page: Any) -> Any:
    page.set_viewport_size(PHONE)
    return page


def _check(page: Any, what: str, controls: bool = True) -> None:
    page.wait_for_load_state("load")
    found = page.evaluate(AUDIT)
    assert found["scrollWidth"] <= found["clientWidth"], (what, found["wide"], found)
    assert not found["wide"], (what, found["wide"])
    assert not controls or found["controls"] > 0, (what, "no form control on the page")
    assert found["unnamed"] == [], (what, found["unnamed"])
    assert found["checked"] > 3, (what, found)
    assert found["faint"] == [], (what, found["faint"])


def _sign_in(page: Any, site: ConsoleSite) -> None:
    page.goto(f"{site.console}/login")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


def test_sign_in_page_fits_a_phone_and_reads_well(
    browser_page: Any, console_site: ConsoleSite
) -> None:
    page = _phone(browser_page)
    page.goto(f"{console_site.console}/login")
    _check(page, "sign-in")
    page.get_by_label("Admin password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()  # the refusal, in a coloured notice
    _check(page, "sign-in refused")


@pytest.mark.parametrize(("what", "path"), PAGES, ids=[p for p, _ in PAGES])
def test_each_page_fits_a_phone_and_reads_well(
    browser_page: Any, console_site: ConsoleSite, what: str, path: str
) -> None:
    page = _phone(browser_page)
    _sign_in(page, console_site)
    page.goto(f"{console_site.console}{path}")
    _check(page, what)


def test_tester_result_fits_a_phone_and_reads_well(
    browser_page: Any, console_site: ConsoleSite
) -> None:
    page = _phone(browser_page)
    _sign_in(page, console_site)
    page.goto(f"{console_site.console}/tester?event=customer.created")
    with page.expect_navigation():  # the tester's own form, whatever its button says
        page.locator("main textarea").evaluate("box => box.form.requestSubmit()")
    page.get_by_test_id("tester-result").wait_for()
    _check(page, "tester result")


def test_tester_recipes_fit_a_phone_and_read_well(
    browser_page: Any, console_store: sa.Engine
) -> None:
    page = _phone(browser_page)
    with start(console_store, config=console_config(recipes=TESTER_RECIPES)) as site:
        _sign_in(page, site)
        page.goto(f"{site.console}/tester?event=lead.created")
        page.get_by_label("Payload (JSON, as the Zap sends it)").fill(json.dumps(TESTER_LEAD))
        with page.expect_navigation():
            page.locator("main textarea").evaluate("box => box.form.requestSubmit()")
        page.get_by_test_id("tester-recipes").wait_for()
        _check(page, "tester recipes")


def test_setup_page_fits_a_phone_and_reads_well(
    browser_page: Any, console_store: sa.Engine
) -> None:
    page = _phone(browser_page)
    with start(console_store, password=False) as site:
        page.goto(f"{site.console}/")
        page.get_by_role("heading", name="Set an admin password first").wait_for()
        _check(page, "setup", controls=False)


def test_the_audit_catches_what_it_checks(browser_page: Any, console_site: ConsoleSite) -> None:
    """The audit itself: a too-wide box, an unnamed field and faint text are all reported."""
    page = _phone(browser_page)
    page.goto(f"{console_site.console}/login")
    page.evaluate(  # styles set through the DOM: the console's CSP refuses inline ones
        """() => {
        const main = document.querySelector("main");
        const add = (tag, text, style) => {
            const el = document.createElement(tag);
            el.textContent = text;
            Object.assign(el.style, style);
            main.append(el);
            return el;
        };
        add("div", "wide", {width: "500px"});
        add("input", "", {}).id = "nameless";
        add("p", "faint", {color: "#aaaaaa"});
        add("a", "link", {color: "#888888"}).href = "#";
    }"""
    )
    found = page.evaluate(AUDIT)
    assert found["scrollWidth"] > found["clientWidth"] and found["wide"]
    assert [u for u in found["unnamed"] if "nameless" in u]
    faint = " ".join(found["faint"])
    assert '"faint"' in faint and '"link"' in faint

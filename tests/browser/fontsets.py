"""The font sets the book is checked with at phone width, each from Debian packages only.

Text width depends on the fonts. A page that fits a 390 px screen with one set of fonts may
stick out with another, and a machine's installed fonts are an accident. So the browser
suite does not use them: for each set below it writes a ``fonts.conf`` that offers exactly
the set's font files (symlinked into a folder of their own, with ``sans-serif``, ``serif``
and ``monospace`` bound to the set's families, nothing else included) and starts Chromium
with ``FONTCONFIG_FILE`` pointing at it. The two sets differ in every family, and each has a
Hangul font for the book's Korean terms.

``tools/ensure_test_deps.sh`` installs the packages (keep its list in step with this one).
A set whose files are missing is an error with the package to install, never a silent
fallback to other fonts.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

INSTALL_HINT = "install them with `bash tools/ensure_test_deps.sh` (Debian, as root or with sudo)"


@dataclass(frozen=True)
class FontSet:
    """One set of fonts: the files (by package) and the families that name them."""

    name: str
    files: dict[str, tuple[str, ...]]  # Debian package -> absolute paths of its font files
    sans: tuple[str, ...]
    serif: tuple[str, ...]
    mono: tuple[str, ...]
    hangul: str  # the family that must cover Korean text

    @property
    def families(self) -> set[str]:
        return {*self.sans, *self.serif, *self.mono, self.hangul}

    def missing(self) -> list[str]:
        """Font files of the set that are not on this machine, with their package."""
        return [
            f"{path} (package {pkg})"
            for pkg, paths in self.files.items()
            for path in paths
            if not Path(path).is_file()
        ]

    def write_config(self, folder: Path) -> Path:
        """Write ``folder/fonts.conf`` offering only this set's fonts; return its path."""
        fonts = folder / "fonts"
        fonts.mkdir(parents=True, exist_ok=True)
        for paths in self.files.values():
            for path in paths:
                link = fonts / Path(path).name
                if not link.exists():
                    link.symlink_to(path)

        def alias(generic: str, families: tuple[str, ...]) -> str:
            prefer = "".join(f"<family>{escape(f)}</family>" for f in (*families, self.hangul))
            return f'  <alias binding="same"><family>{generic}</family><prefer>{prefer}</prefer></alias>\n'

        # The generic names, and the names Chromium asks fontconfig for itself: "sans" for
        # `system-ui` (the theme's first choice) and as its last resort. Without them
        # fontconfig would answer "sans" with whichever font scores first (Liberation Mono).
        generic = {
            ("sans-serif", "sans", "system-ui", "ui-sans-serif"): self.sans,
            ("serif", "ui-serif"): self.serif,
            ("monospace", "mono", "ui-monospace"): self.mono,
        }
        conf = folder / "fonts.conf"
        conf.write_text(
            '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
            f"<!-- font set {self.name!r} for tests/browser (written by fontsets.py) -->\n"
            "<fontconfig>\n"
            f"  <dir>{escape(str(fonts))}</dir>\n"
            f"  <cachedir>{escape(str(folder / 'cache'))}</cachedir>\n"
            # As Debian's 49-sansserif.conf: a request with no generic family (Chromium's
            # fallback for a character, its last resort) gets sans-serif, not the first
            # font that scores best.
            '  <match target="pattern">\n'
            + "".join(
                f'    <test qual="all" name="family" compare="not_eq"><string>{g}</string></test>\n'
                for g in ("sans-serif", "serif", "monospace")
            )
            + '    <edit name="family" mode="append_last"><string>sans-serif</string></edit>\n'
            "  </match>\n"
            + "".join(alias(name, fams) for names, fams in generic.items() for name in names)
            + "</fontconfig>\n",
            encoding="utf-8",
        )
        return conf

    def offered(self, conf: Path) -> set[str]:
        """Every family name fontconfig offers through ``conf`` (localized names included)."""
        return _fc_families(conf)

    def check(self, conf: Path) -> list[str]:
        """What is wrong with the set as fontconfig sees it through ``conf`` ([] if nothing).

        Every family must be found, Korean must be covered, and no other font may be offered.
        """
        if missing := self.missing():
            return [f"font files missing: {', '.join(missing)}; {INSTALL_HINT}"]
        fc_list = shutil.which("fc-list")
        if not fc_list:
            return [f"fc-list not found (package fontconfig); {INSTALL_HINT}"]
        env = {"FONTCONFIG_FILE": str(conf), "PATH": "/usr/bin:/bin"}
        problems = []
        offered = _fc_families(conf)
        if lacking := self.families - offered:
            problems.append(
                f"fontconfig does not offer {sorted(lacking)} (offers {sorted(offered)})"
            )
        # fc-list also lists a family's localized names (e.g. "나눔고딕"); only files count.
        files = subprocess.run(
            [fc_list, "--format", "%{file}\n"], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        ours = {Path(p).name for paths in self.files.values() for p in paths}
        if strangers := sorted({f for f in files if Path(f).name not in ours}):
            problems.append(f"fonts outside the set are offered: {strangers}")
        if self.hangul not in _fc_families(conf, ":lang=ko"):
            problems.append(f"{self.hangul} does not cover Korean (fc-list :lang=ko)")
        return problems


def _fc_families(conf: Path, pattern: str = ":") -> set[str]:
    """The family names ``fc-list PATTERN family`` prints under the fonts.conf ``conf``."""
    out = subprocess.run(
        [shutil.which("fc-list") or "fc-list", pattern, "family"],
        env={"FONTCONFIG_FILE": str(conf), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.strip() for line in out.splitlines() for name in line.split(",") if name.strip()}


_DEJAVU = "/usr/share/fonts/truetype/dejavu/"
_NANUM = "/usr/share/fonts/truetype/nanum/"
_LIBERATION = "/usr/share/fonts/truetype/liberation2/"
_NOTO_CJK = "/usr/share/fonts/opentype/noto/"

FONT_SETS = {
    fs.name: fs
    for fs in [
        # What a fresh Debian machine has (fonts-dejavu-core comes with fontconfig), plus Nanum.
        FontSet(
            name="dejavu",
            files={
                "fonts-dejavu-core": tuple(
                    _DEJAVU + f
                    for f in [
                        "DejaVuSans.ttf",
                        "DejaVuSans-Bold.ttf",
                        "DejaVuSerif.ttf",
                        "DejaVuSerif-Bold.ttf",
                        "DejaVuSansMono.ttf",
                        "DejaVuSansMono-Bold.ttf",
                    ]
                ),
                "fonts-nanum": (_NANUM + "NanumGothic.ttf", _NANUM + "NanumGothicBold.ttf"),
            },
            sans=("DejaVu Sans",),
            serif=("DejaVu Serif",),
            mono=("DejaVu Sans Mono",),
            hangul="NanumGothic",
        ),
        # Metric-compatible with Arial, Times New Roman and Courier New (narrower than DejaVu),
        # with Noto Sans CJK, the Hangul font of Android phones.
        FontSet(
            name="liberation",
            files={
                "fonts-liberation2": tuple(
                    _LIBERATION + f"Liberation{family}-{style}.ttf"
                    for family in ("Sans", "Serif", "Mono")
                    for style in ("Regular", "Bold", "Italic", "BoldItalic")
                ),
                "fonts-noto-cjk": (
                    _NOTO_CJK + "NotoSansCJK-Regular.ttc",
                    _NOTO_CJK + "NotoSansCJK-Bold.ttc",
                ),
            },
            sans=("Liberation Sans",),
            serif=("Liberation Serif",),
            mono=("Liberation Mono",),
            hangul="Noto Sans CJK KR",
        ),
    ]
}

# The set the whole suite runs under (screenshots included); the phone-width check runs
# under every set.
MAIN_FONT_SET = "dejavu"

"""`{eval}` in the built site, answered from the values the chapter glued.

The prose of a chapter quotes numbers as inline expressions, ``{eval}`n_test` `` or
``{eval}`f"{gap:.2f}"` ``: jupyterlab-myst evaluates them in the reader's kernel (JupyterLab,
Binder). On the site the same role is answered from the chapter's glued values
(`vc.glue(name, value)`), formatted as the f-string asks, exactly like myst-nb's
``{glue:text}`gap:.2f` ``. So the site needs no live kernel while it renders: it can be built
from notebooks executed beforehand (`execute_notebooks: off`) or execute them itself (`force`),
and every quoted name must be glued, which the build checks (an unknown name is a warning, and
`-W` makes it an error).

Only the two forms above are accepted: a name, or one f-string field that formats a name.
"""
from __future__ import annotations

import re

from myst_nb.core.variables import create_warning
from myst_nb.ext.glue.roles import PasteTextRole

_EXPRESSION = re.compile(r'^(?:(?P<name>[A-Za-z_]\w*)|f"\{(?P<field>[A-Za-z_]\w*)(?::(?P<spec>[^"{}:]*))?\}")$')


class GluedEvalRole(PasteTextRole):
    """``{eval}`name` `` or ``{eval}`f"{name:spec}"` ``: the glued value of `name`, formatted by `spec`."""

    def run(self):
        match = _EXPRESSION.match(self.text.strip())
        if match is None:
            msg = (f"{{eval}} expression {self.text!r} is not a name or f\"{{name:spec}}\" "
                   "(the only forms the site can answer from glued values)")
            return [], [create_warning(msg, self.document, self.line, subtype="eval")]
        name = match["name"] or match["field"]
        spec = match["spec"]
        self.text = f"{name}:{spec}" if spec else name
        return super().run()


def setup(app):
    app.setup_extension("myst_nb")
    app.add_role("eval", GluedEvalRole(), override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

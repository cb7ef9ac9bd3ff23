"""Import Eclipse 4diac (IEC 61499) XML into a TaskFlow DAG config.

What becomes what:

- Each FB becomes a task: ``id`` is its name (FBs inside an untyped sub-app are flattened to
  ``Sub.FB``), its ``x``/``y`` the task's ``position`` (offset by the sub-app's, for flattened ones)
  and its comment the task's description.
- Its type, without the package prefix (``iec61499::events::E_DELAY`` → ``E_DELAY``), picks the
  operation through the table in ``fourdiac_types.json``, which a user mapping (``--map``, read by
  ``load_mapping``) extends or overrides. An entry also renames pins to param names.
- The IEC 61131-3 standard function blocks (``F_ADD``, ``INT2INT``, ``F_INT_TO_REAL``, ``F_MUX_2``,
  ``AND_2``…) become the ``iec_function`` operation, computing the function on the block's pins; the
  table and ``--map`` still win over this rule.
- Event connections become dependencies. ``E_SPLIT``, ``E_REND`` and sub-app interface pins are
  collapsed: the tasks before them become the dependencies of the tasks after them.
- A data connection becomes a dependent param referencing the **whole output** of the source task
  (``"Fetch"``): TaskFlow operations have one output, 4diac blocks several pins. A mapping entry's
  ``outputs`` can send a pin to a path into that output instead (``{"STATUS": "status"}`` →
  ``"Fetch.status"``). A data connection also makes the source task a dependency.
- ``<Parameter>`` values are IEC 61131-3 literals, converted to JSON: ``T#1m30s`` → ``90.0``
  (seconds), ``'text'`` → ``"text"``, ``TRUE`` → ``true``, ``16#FF`` → ``255``, ``INT#5`` → ``5``,
  arrays ``[1, 2]`` and structs ``(a := 1)``. A value that is not a literal is kept as text, with a note.
- The resource's ``START`` (E_RESTART) ``COLD``/``WARM`` events mark entry tasks; START is no task.
  An ``E_CYCLE`` started by START becomes the suggested cron schedule, and the tasks it fires entry
  tasks. ``E_DELAY`` becomes a ``sleep`` task. The system's ``Mapping`` elements say which blocks of a
  resource are the application's; a communication block (PUBLISH/SUBSCRIBE, CLIENT/SERVER) of a
  resource that drives them is refused.
- A ``%NAME%`` placeholder in a value is kept as text, with a note and a ``RequiredValue`` (the hook for
  run parameters). Tasks come out in dependency order (file order where that leaves a choice).

Everything that cannot be mapped (unmapped types, branching or any-of blocks, adapter connections,
loops, data inputs with two sources, dangling connections, empty networks, basic FB types) is
collected and raised at once as one ``ConfigError``, each problem naming the block as 4diac does (the
validator's findings too, not ``tasks[2]``). A system with several applications and none chosen
raises ``AppChoiceError``, whose ``with_hint`` lets each interface say how to choose. The XML is
untrusted: its size is capped, it is parsed with defusedxml, which refuses entity declarations and
external references; nesting and literals are bounded and the walks over the network linear, so no
file can exhaust the stack or the CPU.

The modules, in the order an import runs through them:

- ``xmltree``: the size cap, safe parsing and the element helpers;
- ``mapping``: the FB type → operation table (built-in ``fourdiac_types.json`` and ``--map`` files);
- ``blocks``: what each FB type becomes (a task, START, E_CYCLE, collapsed, or refused);
- ``model``: the nodes and edges of a network, and the problems and notes found on it;
- ``network``: reading a system's application or a type's network, flattening untyped sub-apps;
- ``resources``: the devices' side of a system: START, the Mapping elements, communication blocks;
- ``flow``: the edges by destination, the walks back over them, the fan-in and loop checks;
- ``schedule``: E_CYCLE → the suggested cron schedule;
- ``tasks``: one node → one task dict (params, references, dependencies);
- ``literals``: IEC 61131-3 literals → JSON values;
- ``build``: the whole import, from bytes to a validated config;
- ``library`` and ``project``: type files (``--lib DIR``) and project ZIPs, typed sub-apps' types;
- ``hints`` and ``summary``: refusals worded for each interface, and long ones summarised by kind.
"""

from orchestrator.fourdiac.build import ImportResult, import_4diac
from orchestrator.fourdiac.hints import API_HINTS, BOT_HINTS, CLI_HINTS, Hints
from orchestrator.fourdiac.library import TypeLibrary
from orchestrator.fourdiac.literals import iec_literal as iec_literal  # for tests and callers: a literal alone
from orchestrator.fourdiac.mapping import TypeMapping, load_mapping
from orchestrator.fourdiac.model import RequiredValue
from orchestrator.fourdiac.network import AppChoiceError
from orchestrator.fourdiac.project import MAP_MEMBER, import_upload, is_zip
from orchestrator.fourdiac.summary import summarised

__all__ = [
    "API_HINTS",
    "BOT_HINTS",
    "CLI_HINTS",
    "MAP_MEMBER",
    "AppChoiceError",
    "Hints",
    "ImportResult",
    "RequiredValue",
    "TypeLibrary",
    "TypeMapping",
    "import_4diac",
    "import_upload",
    "is_zip",
    "load_mapping",
    "summarised",
]

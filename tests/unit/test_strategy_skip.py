"""plugins/strategy/mitogen_linear.py: a task whose ``when`` is false is skipped in the controller, and a task of
an action that never reaches the host (debug, set_fact, assert, fail, validate_argument_spec) runs there.

One small playbook (``-i localhost, -c local``, the repository's ansible.cfg) runs under Ansible's stock
``linear`` strategy and under ours, with the JSON callback: every task's result, the registered
variables and the statistics must be the same. The conditions and arguments call a ``pipe`` lookup that
writes its shell's parent process id: under ours, a false condition and a controller action's arguments
are templated by the ansible-playbook process itself; under stock linear (and under ours for what still
needs a worker) by a forked worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document
from portalops.vault import REPO_ROOT

# Each condition or argument marks which process templated it: `echo $PPID >> marks/<name>` prints nothing, so
# the lookup is "" and the comparison decides. The skips are of command tasks: run, they need a worker.
PLAYBOOK = """\
- name: Conditions and controller actions
  hosts: all
  gather_facts: false
  vars:
    mark: "echo $PPID >> {marks}/"
  handlers:
    - name: A handler whose condition is false
      ansible.builtin.command: "true"
      when: lookup('pipe', mark ~ 'handler') == 'x'
  tasks:
    - name: False, registered
      ansible.builtin.command: "true"
      register: skipped_one
      when: lookup('pipe', mark ~ 'false') == 'x'

    - name: True
      ansible.builtin.command: echo runs
      when: lookup('pipe', mark ~ 'true') == ''
      notify: A handler whose condition is false

    - name: A list of conditions, the second false
      ansible.builtin.command: "true"
      when:
        - true
        - lookup('pipe', mark ~ 'second') == 'x'

    - name: False, with a loop (a condition per item, in a worker)
      ansible.builtin.command: echo {{{{ item }}}}
      loop: [1, 2]
      when: lookup('pipe', mark ~ 'loop') == 'x'

    - name: False, delegated (the delegated host's variables, in a worker)
      ansible.builtin.command: "true"
      delegate_to: localhost
      when: lookup('pipe', mark ~ 'delegated') == 'x'

    - name: False, an include
      ansible.builtin.include_tasks: missing.yml
      when: lookup('pipe', mark ~ 'include') == 'x'

    - name: False, secret
      ansible.builtin.command: "true"
      no_log: true
      when: lookup('pipe', mark ~ 'no_log') == 'x'

    - name: Undefined in the condition
      ansible.builtin.command: "true"
      when: not_defined_anywhere
      ignore_errors: true

    - name: A block whose condition is false
      when: lookup('pipe', mark ~ 'block') == 'x'
      block:
        - name: In the block
          ansible.builtin.command: "true"

    - name: What was registered
      ansible.builtin.debug:
        var: skipped_one

    - name: A fact per item
      ansible.builtin.set_fact:
        numbers: "{{{{ numbers | default([]) + [lookup('pipe', mark ~ 'set_fact') ~ item] }}}}"
      loop: [1, 2]
      register: facts_made

    - name: An assertion that holds
      ansible.builtin.assert:
        that: lookup('pipe', mark ~ 'assert') == '' and numbers == ['1', '2']
        quiet: true

    - name: An assertion that fails
      ansible.builtin.assert:
        that: numbers == []
        fail_msg: numbers are {{{{ numbers }}}}
      ignore_errors: true

    - name: A failure
      ansible.builtin.fail:
        msg: failed{{{{ lookup('pipe', mark ~ 'fail') }}}}
      ignore_errors: true

    - name: A message
      ansible.builtin.debug:
        msg: "{{{{ numbers }}}}{{{{ lookup('pipe', mark ~ 'debug') }}}}"

    - name: Arguments that do not match their specification
      ansible.builtin.validate_argument_spec:
        argument_spec:
          port:
            type: int
            required: true
        provided_arguments:
          port: not a number{{{{ lookup('pipe', mark ~ 'spec') }}}}
      ignore_errors: true

    - name: An assertion retried until it holds (in a worker, where every host waits at once)
      ansible.builtin.assert:
        that: lookup('pipe', mark ~ 'until') == ''
      register: retried
      until: retried is success
      retries: 1
      delay: 0

    - name: The facts on the host
      ansible.builtin.command: echo {{{{ numbers | join(',') }}}} {{{{ facts_made.results | length }}}}
      register: echoed
      changed_when: false
      failed_when: echoed.stdout != '1,2 2'

    - name: A role with an argument specification
      ansible.builtin.import_role:
        name: with_spec
      vars:
        with_spec_port: 8080
"""
ROLE_SPEC = """\
argument_specs:
  main:
    short_description: A role whose input is checked
    options:
      with_spec_port:
        type: int
        required: true
"""
ROLE_TASKS = """\
- name: Use the port
  ansible.builtin.debug:
    msg: "{{ with_spec_port + 1 }}"
"""
# Keys whose values differ from run to run (path: each run has its own directory).
VOLATILE = {"duration", "id", "start", "end", "delta", "path"}


def run(tmp_path: Path, strategy: str) -> tuple[subprocess.CompletedProcess[str], int, Path]:
    work = tmp_path / strategy
    marks = work / "marks"
    marks.mkdir(parents=True)
    (work / "site.yml").write_text(PLAYBOOK.format(marks=marks))
    role = work / "roles" / "with_spec"
    (role / "meta").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(ROLE_SPEC)
    (role / "tasks" / "main.yml").write_text(ROLE_TASKS)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        **JSON_CALLBACK_ENV,
        "ANSIBLE_STRATEGY": strategy,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,  # the command tasks run on this machine
    }
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(work / "site.yml")]
    proc = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr), proc.pid, marks


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def evaluated_by(marks: Path) -> dict[str, set[int]]:
    return {mark.name: {int(pid) for pid in mark.read_text().split()} for mark in marks.iterdir()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], int, dict[str, set[int]]]]:
    tmp_path = tmp_path_factory.mktemp("strategies")
    found = {}
    for strategy in ("linear", "mitogen_linear"):
        done, pid, marks = run(tmp_path, strategy)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        found[strategy] = (callback_document(done.stdout), pid, evaluated_by(marks))
    return found


def test_every_result_registered_variable_and_statistic_is_the_same_as_stock_linear(runs: Any) -> None:
    stock, ours = runs["linear"][0], runs["mitogen_linear"][0]
    assert stable(ours["plays"]) == stable(stock["plays"])
    assert ours["stats"] == stock["stats"]
    result = {task["task"]["name"]: task["hosts"]["localhost"] for task in ours["plays"][0]["tasks"]}
    registered = result["What was registered"]["skipped_one"]
    assert registered["skipped"] is True and registered["false_condition"].startswith("lookup('pipe'")
    assert result["A handler whose condition is false"]["skipped"] is True  # notified, then skipped
    assert "censored" in result["False, secret"]
    assert result["Undefined in the condition"]["failed"] is True  # ignored: the play goes on
    assert result["An assertion that fails"]["msg"] == "numbers are ['1', '2']"
    assert "port" in result["Arguments that do not match their specification"]["msg"]
    assert result["with_spec : Use the port"]["msg"] == 8081
    assert ours["stats"]["localhost"]["skipped"] == 8 and ours["stats"]["localhost"]["ignored"] == 4


def test_a_false_condition_and_a_controller_action_are_done_in_the_controller_anything_else_in_a_worker(
    runs: Any,
) -> None:
    _, controller, marks = runs["mitogen_linear"]
    in_controller = {name for name, pids in marks.items() if pids == {controller}}
    skipped = {"false", "second", "include", "no_log", "block", "handler"}
    actions = {"set_fact", "assert", "fail", "debug", "spec"}
    assert in_controller == skipped | actions, marks
    assert controller not in marks["loop"] | marks["delegated"] | marks["until"]
    # A true condition is evaluated twice, as every variable a task reads is templated again by its worker.
    assert controller in marks["true"] and len(marks["true"]) == 2
    _, stock_controller, stock_marks = runs["linear"]
    assert set(stock_marks) == set(marks)
    assert stock_controller not in set().union(*stock_marks.values()), "stock linear evaluates in its workers"

// Runs XForms in @getodk/xforms-engine (the engine behind ODK Web Forms) for forms/webforms.py.
//
// Reads JSON requests on stdin: {"forms": {name: xform_xml}, "jobs": [job, ...]}, and answers each with
// {"results": [result, ...]} in the order of the jobs. With --lines it serves one request per line, one
// answer per line, until stdin closes (Node and the engine cost about 1.5 s to start); without, it reads
// one request from the whole of stdin. A job is
//   {"kind": "load", "form": name}
//   {"kind": "fill", "form": name, "steps": [{"ref": "/data/q", "value": "x" | ["a", "b"]} |
//                                            {"ref": "/data/repeat", "add": n}], "serialize": bool}
//   {"kind": "restore", "form": name, "instance": instance_xml}
// and its result carries the engine's load status, the form's languages, every node's state after the
// job (reference, type, relevant, required, value as it would be serialized, and the violation with its
// message in every language) and, for "fill" with serialize, the OpenRosa submission XML.
// Errors of one job are reported in its result ({"error": ...}); the process fails only on bad input.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { JSDOM } from 'jsdom';

const { window } = new JSDOM('');
globalThis.document = window.document;
globalThis.DOMParser = window.DOMParser;
globalThis.Node = window.Node;
globalThis.__dirname ??= '/';
globalThis.module ??= { exports: {} };

const engine = await import('@getodk/xforms-engine');

const loaded = new Map(); // XForm XML → the engine's loaded form

async function load(request, name) {
  const xml = request.forms[name];
  if (typeof xml !== 'string') throw new Error(`no form named ${name} in the request`);
  if (!loaded.has(xml)) loaded.set(xml, await engine.loadForm(xml));
  return loaded.get(xml);
}

function text(error) {
  if (error == null) return null;
  return error.message ?? String(error);
}

function* nodes(node) {
  yield node;
  for (const child of node.currentState.children ?? []) yield* nodes(child);
}

function find(root, ref) {
  for (const node of nodes(root)) {
    if (node.currentState.reference === ref) return node;
  }
  throw new Error(`the form has no node ${ref}`);
}

function describe(root, languages) {
  const out = [];
  const violations = new Map();
  for (const language of languages) {
    root.setLanguage(language);
    for (const node of nodes(root)) {
      const violation = node.validationState?.violation;
      if (!violation) continue;
      const ref = node.currentState.reference;
      const entry = violations.get(ref) ?? { condition: violation.condition, messages: {} };
      entry.messages[language.language] = violation.message?.asString ?? null;
      violations.set(ref, entry);
    }
  }
  if (languages.length) root.setLanguage(languages.find((l) => l.isDefault) ?? languages[0]);
  for (const node of nodes(root)) {
    const state = node.currentState;
    out.push({
      ref: state.reference,
      type: node.nodeType,
      relevant: state.relevant,
      required: state.required ?? false,
      value: typeof state.instanceValue === 'string' ? state.instanceValue : null,
      violation: violations.get(state.reference) ?? null,
    });
  }
  return out;
}

function apply(root, step) {
  const node = find(root, step.ref);
  if (step.add !== undefined) {
    node.addInstances(undefined, step.add);
  } else if (node.nodeType === 'select') {
    if (Array.isArray(step.value)) node.selectValues(step.value);
    else node.selectValue(step.value);
  } else if (typeof node.setValue === 'function') {
    node.setValue(step.value);
  } else {
    throw new Error(`${step.ref} is a ${node.nodeType}, which takes no answer`);
  }
}

async function run(request, job) {
  const form = await load(request, job.form);
  const result = { status: form.status, error: text(form.error), warnings: form.warnings ?? null };
  if (form.status === 'failure') return result;
  let instance;
  try {
    if (job.kind === 'restore') {
      const data = new FormData();
      data.set('xml_submission_file', new File([job.instance], 'submission.xml', { type: 'text/xml' }));
      instance = await form.restoreInstance({ data: [data] });
    } else {
      instance = form.createInstance();
    }
  } catch (error) {
    return { ...result, status: 'failure', error: `cannot create an instance: ${text(error)}` };
  }
  const root = instance.root;
  result.languages = root.languages.filter((l) => !l.isSyntheticDefault).map((l) => l.language);
  if (job.kind === 'fill') {
    for (const [index, step] of (job.steps ?? []).entries()) {
      try {
        apply(root, step);
      } catch (error) {
        return { ...result, error: `step ${index + 1} (${step.ref}): ${text(error)}` };
      }
    }
  }
  result.nodes = describe(root, root.languages.filter((l) => !l.isSyntheticDefault));
  if (job.serialize) {
    const payload = await root.prepareInstancePayload();
    result.payload_status = payload.status;
    result.submission = await payload.data[0].get('xml_submission_file').text();
  }
  return result;
}

async function answer(request) {
  const results = [];
  for (const job of request.jobs) {
    try {
      results.push(await run(request, job));
    } catch (error) {
      results.push({ status: 'failure', error: text(error) });
    }
  }
  return JSON.stringify({ results });
}

if (process.argv.includes('--lines')) {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim()) process.stdout.write(`${await answer(JSON.parse(line))}\n`);
  }
} else {
  process.stdout.write(await answer(JSON.parse(readFileSync(0, 'utf8'))));
}

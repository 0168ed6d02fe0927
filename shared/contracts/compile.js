#!/usr/bin/env node
// Compiles src/OverlapsRewards.sol with solc-js (offline) into
// artifacts/OverlapsRewards.json: ABI, creation and runtime bytecode, and the exact
// compiler settings. `node compile.js --print` writes the artifact to stdout instead
// (the Rust drift test compares it with the committed file); `node compile.js
// --check` (`npm run check`) exits 1 when the committed artifact differs from the
// source, writing nothing. `npm run build` is `node compile.js`.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const NAME = 'OverlapsRewards';
const SOURCE = `src/${NAME}.sol`;
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

function findImport(importPath) {
  for (const base of [__dirname, path.join(__dirname, 'node_modules')]) {
    const file = path.join(base, importPath);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, 'utf8') };
  }
  return { error: `not found: ${importPath}` };
}

const input = {
  language: 'Solidity',
  sources: { [SOURCE]: { content: fs.readFileSync(path.join(__dirname, SOURCE), 'utf8') } },
  settings: SETTINGS,
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
if (errors.length > 0) process.exit(1);

const contract = output.contracts[SOURCE][NAME];
const artifact = {
  contractName: NAME,
  sourceName: SOURCE,
  compiler: { name: 'solc-js', version: solc.version(), settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion } },
  abi: contract.abi,
  bytecode: '0x' + contract.evm.bytecode.object,
  deployedBytecode: '0x' + contract.evm.deployedBytecode.object,
};
const text = JSON.stringify(artifact, null, 2) + '\n';
const target = path.join(__dirname, 'artifacts', `${NAME}.json`);
if (process.argv.includes('--print')) {
  process.stdout.write(text);
} else if (process.argv.includes('--check')) {
  const committed = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
  if (committed !== text) {
    process.stderr.write(`artifacts/${NAME}.json is stale: run \`npm run build\` and commit it\n`);
    process.exit(1);
  }
  process.stderr.write(`artifacts/${NAME}.json matches the source\n`);
} else {
  fs.mkdirSync(path.join(__dirname, 'artifacts'), { recursive: true });
  fs.writeFileSync(target, text);
  process.stderr.write(`wrote artifacts/${NAME}.json\n`);
}

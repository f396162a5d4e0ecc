#!/usr/bin/env node
// `neuralign <command>`: thin wrappers that parse flags, call the library and print results.
import { runCli } from './cli/main.js';

process.exitCode = await runCli(process.argv.slice(2));

/**
 * The subcommands of bin/ibpgen.ts, one module each: a module exports a function that adds its
 * command to the program. Add a generator by writing ibpgen/<name>.ts and listing it here.
 */
import type { Command } from 'commander';
import { registerNewApp } from './new-app.js';
import { registerMessages } from './messages.js';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: readonly RegisterCommand[] = [registerNewApp, registerMessages];

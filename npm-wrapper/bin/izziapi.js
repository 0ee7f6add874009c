#!/usr/bin/env node
'use strict';
// `npx izziapi`: with no arguments it starts `izzi setup`, the product's first step; with
// arguments it is `izzi` itself.

const args = process.argv.slice(2);
require('../lib/run.js').run(args.length === 0 ? ['setup'] : args);

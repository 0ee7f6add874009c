#!/usr/bin/env node
'use strict';
// `izzi` after `npm install -g izziapi`: the binary itself, arguments unchanged.

require('../lib/run.js').run(process.argv.slice(2));

#!/usr/bin/env node
// The TCPMQ gateway: boards on TCP, everything else on MQTT (see --help).
'use strict';
require('../dist/gateway/main').main(process.argv.slice(2));

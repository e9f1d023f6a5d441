/** Every metric of the project starts with this (the default process_* and nodejs_* ones do not). */
export const METRIC_PREFIX = 'code42_forwarder_';

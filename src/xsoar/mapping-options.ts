import type { Config } from '../config/load-config.js';
import type { MappingOptions } from './incident-mapper.js';

/** The incident mapping as the configuration sets it: one place, so creates and updates map alike. */
export function mappingOptions(config: Config): MappingOptions {
  return {
    incidentType: config.xsoar.incidentType,
    consoleUrl: config.code42.consoleUrl,
    createInvestigation: config.xsoar.createInvestigation,
    playbookId: config.xsoar.playbookId,
    includeFiles: config.enrich.includeFiles,
    maxFileEvents: config.enrich.maxFileEvents,
    sourceBrand: config.xsoar.sourceBrand,
    maxBodyBytes: config.xsoar.maxBody,
  };
}

export function parseProxyHeader(..._a: unknown[]): any { throw new Error('stub'); }
export function buildProxyHeaderV1(..._a: unknown[]): any { throw new Error('stub'); }
export function buildProxyHeaderV2(..._a: unknown[]): any { throw new Error('stub'); }

export { type BankWorkloadOptions, bankWorkload } from './bank.js';
export { type ContractNetWorkloadOptions, contractNetWorkload } from './contract-net.js';
export { type ModelStormWorkloadOptions, modelStormWorkload } from './model-storm.js';

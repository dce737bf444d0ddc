export { type BankWorkloadOptions, bankWorkload } from './bank.js';

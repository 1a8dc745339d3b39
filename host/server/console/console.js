// The bulkhost console.
